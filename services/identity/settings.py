"""Identity's own settings: session lifetimes, temporary passwords, hashing cost, bootstrap."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from services.identity.passwords import (
    MIN_MEMORY_KIB,
    MIN_PARALLELISM,
    MIN_TIME_COST,
    HashParams,
)
from services.runtime.settings import env_float, env_int


@dataclass(frozen=True)
class IdentitySettings:
    session_idle: timedelta
    session_lifetime: timedelta
    temporary_password_lifetime: timedelta
    hash_params: HashParams
    admin_password: str | None  # creates staff user "admin" when no such user exists yet

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IdentitySettings:
        """Raises ConfigError naming the variable when a value is malformed or out of range."""
        env = os.environ if env is None else env
        return cls(
            session_idle=timedelta(
                minutes=env_float(env, "PORTAL_SESSION_IDLE_MINUTES", 15, above=0)
            ),
            session_lifetime=timedelta(
                hours=env_float(env, "PORTAL_SESSION_MAX_HOURS", 12, above=0)
            ),
            temporary_password_lifetime=timedelta(
                hours=env_float(env, "PORTAL_TEMP_PASSWORD_HOURS", 72, above=0)
            ),
            hash_params=HashParams(
                memory_kib=env_int(env, "PORTAL_ARGON2_MEMORY_KIB", 19456, minimum=MIN_MEMORY_KIB),
                time_cost=env_int(env, "PORTAL_ARGON2_TIME_COST", 2, minimum=MIN_TIME_COST),
                parallelism=env_int(env, "PORTAL_ARGON2_PARALLELISM", 1, minimum=MIN_PARALLELISM),
            ),
            admin_password=env.get("PORTAL_ADMIN_PASSWORD") or None,
        )
