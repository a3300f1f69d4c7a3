"""The client address behind reverse proxies: only trusted hops are believed."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from services.gateway.auth import forwarded_client
from services.gateway.settings import GatewaySettings
from services.runtime.settings import ConfigError
from tests.conftest import TEST_GATEWAY_ENV

PROXIES = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


def test_no_trusted_proxies_means_the_peer() -> None:
    assert forwarded_client("203.0.113.7", ["198.51.100.1"], ()) == "203.0.113.7"


def test_a_trusted_proxy_hands_over_the_client() -> None:
    assert forwarded_client("10.1.2.3", ["198.51.100.1"], PROXIES) == "198.51.100.1"


def test_a_forged_entry_left_of_the_real_client_is_ignored() -> None:
    # The client wrote "1.2.3.4" itself; our ingress appended the real address.
    assert forwarded_client("10.1.2.3", ["1.2.3.4, 198.51.100.1"], PROXIES) == "198.51.100.1"


def test_chains_of_trusted_proxies_and_several_headers() -> None:
    headers = ["198.51.100.9, 10.0.0.5", "fd00::1"]
    assert forwarded_client("10.9.9.9", headers, PROXIES) == "198.51.100.9"


def test_an_untrusted_peer_cannot_spoof() -> None:
    assert forwarded_client("198.51.100.1", ["10.0.0.1"], PROXIES) == "198.51.100.1"


def test_malformed_hops_stop_the_walk() -> None:
    assert forwarded_client("10.1.2.3", ["not-an-address"], PROXIES) == "10.1.2.3"


def test_the_setting_is_parsed_and_checked() -> None:
    base = TEST_GATEWAY_ENV
    settings = GatewaySettings.from_env({**base, "PORTAL_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    with pytest.raises(ConfigError, match="PORTAL_TRUSTED_PROXIES"):
        GatewaySettings.from_env({**base, "PORTAL_TRUSTED_PROXIES": "10.0.0.0/33"})
    with pytest.raises(ConfigError, match="PORTAL_CLINIC_TIMEZONE"):
        GatewaySettings.from_env({**base, "PORTAL_CLINIC_TIMEZONE": "Mars/Olympus"})
