"""Service settings of deployment edges: gRPC reflection (development only) and stream replicas."""

from __future__ import annotations

import pytest

from services.runtime.settings import ConfigError, ServiceSettings
from tests.conftest import TEST_SERVICE_ENV


def settings(**env: str) -> ServiceSettings:
    return ServiceSettings.from_env("identity", {**TEST_SERVICE_ENV, **env})


def test_reflection_is_off_unless_asked_for() -> None:
    assert settings().grpc_reflection is False
    assert settings(PORTAL_GRPC_REFLECTION="true").grpc_reflection is True
    with pytest.raises(ConfigError, match="PORTAL_GRPC_REFLECTION"):
        settings(PORTAL_GRPC_REFLECTION="sometimes")


def test_stream_replicas_default_to_one_and_stay_within_jetstreams_limit() -> None:
    assert settings().stream_replicas == 1
    assert settings(PORTAL_STREAM_REPLICAS="3").stream_replicas == 3
    for bad in ("0", "6", "three"):
        with pytest.raises(ConfigError, match="PORTAL_STREAM_REPLICAS"):
            settings(PORTAL_STREAM_REPLICAS=bad)
