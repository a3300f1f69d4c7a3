"""Typed settings read from environment variables, with defaults for a developer machine."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def env_str(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, "").strip()
    if value:
        return value
    if default is None:
        raise ConfigError(f"{name} is not set")
    return default


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


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of one gRPC service process."""

    service: str
    database_url: str
    nats_url: str
    grpc_listen: str
    principal_key: str
    log_level: str
    trace_file: str | None
    otlp_endpoint: str | None
    db_pool_max: int
    shutdown_grace: float
    shutdown_drain: float

    @classmethod
    def from_env(cls, service: str, env: Mapping[str, str] | None = None) -> ServiceSettings:
        env = os.environ if env is None else env
        port = DEFAULT_PORTS[service]
        return cls(
            service=service,
            database_url=env_str(
                env, "PORTAL_DATABASE_URL", f"postgresql://postgres@127.0.0.1:5432/portal_{service}"
            ),
            nats_url=env_str(env, "PORTAL_NATS_URL", "nats://127.0.0.1:4222"),
            grpc_listen=env_str(env, "PORTAL_GRPC_LISTEN", f"127.0.0.1:{port}"),
            principal_key=env_str(env, "PORTAL_PRINCIPAL_KEY"),
            log_level=env_log_level(env),
            trace_file=env.get("PORTAL_TRACE_FILE") or None,
            otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            db_pool_max=env_int(env, "PORTAL_DB_POOL_MAX", 10, minimum=1),
            shutdown_grace=env_float(env, "PORTAL_SHUTDOWN_GRACE", 20.0, minimum=0),
            shutdown_drain=env_float(env, "PORTAL_SHUTDOWN_DRAIN", 1.0, minimum=0),
        )
