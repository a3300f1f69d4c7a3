"""Typed settings read from environment variables, with defaults for a developer machine."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.runtime.principal_keys import BadKey, SigningKey, load_public_keys, load_signing_key


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError(f"{name} is not set")
    return default


def env_secret(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    """A secret given as NAME, or read from the file NAME_FILE names (a mounted Secret)."""
    path = env.get(f"{name}_FILE", "").strip()
    if path and env.get(name, "").strip():
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    if not path:
        return env_str(env, name, default)
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}_FILE: cannot read {path} ({exc.strerror})") from None
    if not value:
        raise ConfigError(f"{name}_FILE: {path} is empty")
    return value


K = TypeVar("K")


def _key_setting(env: Mapping[str, str], name: str, load: Callable[[str], K]) -> K:
    # The HMAC key of earlier versions let any service mint principals; say what replaced it.
    if env.get("PORTAL_PRINCIPAL_KEY", "").strip():
        raise ConfigError(
            "PORTAL_PRINCIPAL_KEY is no longer used: the gateway signs principals with "
            "PORTAL_PRINCIPAL_PRIVATE_KEY and services verify them with "
            "PORTAL_PRINCIPAL_PUBLIC_KEYS (see deploy/README.md)"
        )
    try:
        return load(env_secret(env, name))
    except BadKey as exc:
        raise ConfigError(f"{name}: {exc}") from None


def env_signing_key(env: Mapping[str, str]) -> SigningKey:
    """The gateway's Ed25519 private key (PORTAL_PRINCIPAL_PRIVATE_KEY[_FILE])."""
    return _key_setting(env, "PORTAL_PRINCIPAL_PRIVATE_KEY", load_signing_key)


def env_public_keys(env: Mapping[str, str]) -> dict[str, Ed25519PublicKey]:
    """The public keys principals may be signed with (PORTAL_PRINCIPAL_PUBLIC_KEYS[_FILE])."""
    return _key_setting(env, "PORTAL_PRINCIPAL_PUBLIC_KEYS", load_public_keys)


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    above: float | None = None,
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {value:g}")
    if above is not None and value <= above:
        raise ConfigError(f"{name} must be more than {above:g}, got {value:g}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_log_level(env: Mapping[str, str]) -> str:
    level = env_str(env, "PORTAL_LOG_LEVEL", "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"PORTAL_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level


# Default gRPC ports; `make run` and the gateway use the same table.
DEFAULT_PORTS = {"identity": 50051, "forms": 50052, "scheduling": 50053}
MAX_STREAM_REPLICAS = 5  # JetStream refuses more


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one gRPC service process."""

    service: str
    database_url: str
    migration_database_url: str | None  # the owner's; none: migrate with database_url
    nats_url: str
    grpc_listen: str
    principal_public_keys: dict[str, Ed25519PublicKey]  # by key id; no private key, ever
    nats_user: str | None  # none: connect without credentials (a server with no auth)
    nats_password: str | None
    log_level: str
    trace_file: str | None
    otlp_endpoint: str | None
    db_pool_max: int
    shutdown_grace: float
    shutdown_drain: float
    stream_replicas: int  # copies of the service's JetStream stream (3 on a 3-node cluster)
    grpc_reflection: bool  # lets grpcurl list the API; development only

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if env is None else env
        port = DEFAULT_PORTS[service]
        return cls(
            service=service,
            database_url=env_str(
                env, "PORTAL_DATABASE_URL", f"postgresql://postgres@127.0.0.1:5432/portal_{service}"
            ),
            migration_database_url=env.get("PORTAL_MIGRATION_DATABASE_URL", "").strip() or None,
            nats_url=env_str(env, "PORTAL_NATS_URL", "nats://127.0.0.1:4222"),
            grpc_listen=env_str(env, "PORTAL_GRPC_LISTEN", f"127.0.0.1:{port}"),
            principal_public_keys=env_public_keys(env),
            nats_user=env.get("PORTAL_NATS_USER", "").strip() or None,
            nats_password=_nats_password(env),
            log_level=env_log_level(env),
            trace_file=env.get("PORTAL_TRACE_FILE") or None,
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            db_pool_max=env_int(env, "PORTAL_DB_POOL_MAX", 10, minimum=1),
            shutdown_grace=env_float(env, "PORTAL_SHUTDOWN_GRACE", 20.0, minimum=0),
            shutdown_drain=env_float(env, "PORTAL_SHUTDOWN_DRAIN", 1.0, minimum=0),
            stream_replicas=_stream_replicas(env),
            grpc_reflection=env_bool(env, "PORTAL_GRPC_REFLECTION", False),
        )


def _stream_replicas(env: Mapping[str, str]) -> int:
    replicas = env_int(env, "PORTAL_STREAM_REPLICAS", 1, minimum=1)
    if replicas > MAX_STREAM_REPLICAS:
        raise ConfigError(
            f"PORTAL_STREAM_REPLICAS must be at most {MAX_STREAM_REPLICAS} (JetStream's limit), "
            f"got {replicas}"
        )
    return replicas


def _nats_password(env: Mapping[str, str]) -> str | None:
    if not env.get("PORTAL_NATS_USER", "").strip():
        if env.get("PORTAL_NATS_PASSWORD") or env.get("PORTAL_NATS_PASSWORD_FILE"):
            raise ConfigError("PORTAL_NATS_PASSWORD is set but PORTAL_NATS_USER is not")
        return None
    return env_secret(env, "PORTAL_NATS_PASSWORD")
