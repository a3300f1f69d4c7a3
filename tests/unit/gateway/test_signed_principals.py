"""The gateway reuses a principal it signed for a few seconds (one signature per session and
address, not per call), never for another principal, and never past REUSE_SIGNED_SECONDS."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.gateway import backends as backends_module
from services.gateway.backends import REUSE_SIGNED_SECONDS, Backends
from services.gateway.settings import GatewaySettings
from services.runtime.principal import Principal
from tests.conftest import TEST_GATEWAY_ENV, free_port, principal_verifier

PATIENT = Principal(
    kind="patient", subject="7a1e2b3c-0000-4000-8000-000000000001", realm="onsite", source="a"
)


async def test_a_signed_principal_is_reused_briefly_and_only_for_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {**TEST_GATEWAY_ENV}
    env.update(
        {
            f"PORTAL_{n.upper()}_ADDR": f"127.0.0.1:{free_port()}"
            for n in ("identity", "forms", "scheduling")
        }
    )
    settings = GatewaySettings.from_env(env)
    backends = Backends(settings.backends, settings.principal_key)
    clock = [1000.0]
    monkeypatch.setattr(backends_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))

    first = backends.auth(PATIENT)
    assert principal_verifier().decode(first[0][1]) == PATIENT
    clock[0] += REUSE_SIGNED_SECONDS - 0.1
    assert backends.auth(PATIENT) is first
    other = Principal(kind="patient", subject=PATIENT.subject, realm="onsite", source="b")
    assert principal_verifier().decode(backends.auth(other)[0][1]) == other
    clock[0] += 0.2
    assert backends.auth(PATIENT) is not first  # signed again
    for channel in backends.channels.values():
        await channel.close(grace=None)
