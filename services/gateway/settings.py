"""Gateway settings from environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from ipaddress import IPv4Network, IPv6Network, ip_network
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.gateway.session_cache import DEFAULT_TTL
from services.runtime.principal_keys import SigningKey
from services.runtime.settings import (
    DEFAULT_PORTS,
    ConfigError,
    env_bool,
    env_float,
    env_int,
    env_secret,
    env_signing_key,
    env_str,
)

# The gateway's own secret keys CSRF tokens and credentials letters; shared by its replicas.
SECRET_MIN_LENGTH = 32
HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


@dataclass(frozen=True)
class GatewaySettings:
    host: str
    port: int
    backends: dict[str, str]  # service name -> gRPC address
    principal_key: SigningKey  # signs the principals it sends; only the gateway has it
    secret: str  # PORTAL_GATEWAY_SECRET: CSRF tokens and credentials letters
    cookie_secure: bool
    onsite_url: str
    offsite_url: str
    clinic_name: str
    clinic_timezone: tzinfo
    log_level: str
    trace_file: str | None
    otlp_endpoint: str | None
    login_rate_per_minute: int
    # Resolved sessions are kept this long (services.gateway.session_cache); 0: not at all.
    session_cache_seconds: float
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...]
    # The staff portal and staff API answer only on this host / from these networks (404
    # elsewhere); None / empty: anywhere.
    staff_host: str | None
    staff_allowed_networks: tuple[IPv4Network | IPv6Network, ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewaySettings:
        env = os.environ if env is None else env
        host = env_str(env, "PORTAL_GATEWAY_HOST", "127.0.0.1")
        port = env_int(env, "PORTAL_GATEWAY_PORT", 8080)
        public = env_str(env, "PORTAL_PUBLIC_URL", f"http://{host}:{port}").rstrip("/")
        return cls(
            host=host,
            port=port,
            backends={
                name: env_str(env, f"PORTAL_{name.upper()}_ADDR", f"127.0.0.1:{default}")
                for name, default in DEFAULT_PORTS.items()
            },
            principal_key=env_signing_key(env),
            secret=_secret(env),
            cookie_secure=env_bool(env, "PORTAL_COOKIE_SECURE", True),
            onsite_url=_slash(env_str(env, "PORTAL_ONSITE_URL", f"{public}/portal/onsite/")),
            offsite_url=_slash(env_str(env, "PORTAL_OFFSITE_URL", f"{public}/portal/offsite/")),
            clinic_name=env_str(env, "PORTAL_CLINIC_NAME", "Demo Clinic"),
            clinic_timezone=_zone(env_str(env, "PORTAL_CLINIC_TIMEZONE", "UTC")),
            log_level=env_str(env, "PORTAL_LOG_LEVEL", "INFO").upper(),
            trace_file=env.get("PORTAL_TRACE_FILE") or None,
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            login_rate_per_minute=env_int(env, "PORTAL_LOGIN_RATE_PER_MINUTE", 20),
            session_cache_seconds=env_float(
                env, "PORTAL_SESSION_CACHE_SECONDS", DEFAULT_TTL, minimum=0
            ),
            trusted_proxies=_networks(env, "PORTAL_TRUSTED_PROXIES"),
            staff_host=_host(env.get("PORTAL_STAFF_HOST", "")),
            staff_allowed_networks=_networks(env, "PORTAL_STAFF_ALLOWED_NETWORKS"),
        )


def _secret(env: Mapping[str, str]) -> str:
    secret = env_secret(env, "PORTAL_GATEWAY_SECRET")
    if len(secret) < SECRET_MIN_LENGTH:
        raise ConfigError(f"PORTAL_GATEWAY_SECRET must be at least {SECRET_MIN_LENGTH} characters")
    return secret


def _networks(env: Mapping[str, str], name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    text = env.get(name, "")
    try:
        return tuple(ip_network(part.strip()) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"{name} must be comma-separated addresses or CIDRs, got {text!r}"
        ) from None


def _host(text: str) -> str | None:
    host = text.strip().lower().rstrip(".")
    if not host:
        return None
    if not HOST_NAME.fullmatch(host):
        raise ConfigError(
            f"PORTAL_STAFF_HOST must be a host name like staff.example.org, got {text!r}"
        )
    return host


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"PORTAL_CLINIC_TIMEZONE must be an IANA time zone like Europe/Berlin, got {name!r}"
        ) from None


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
