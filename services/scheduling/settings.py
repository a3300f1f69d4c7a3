"""Scheduling's own settings: the clinic's time zone, in which working hours are read."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.runtime.settings import ConfigError, env_str


@dataclass(frozen=True)
class SchedulingSettings:
    time_zone: ZoneInfo

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SchedulingSettings:
        env = os.environ if env is None else env
        name = env_str(env, "PORTAL_CLINIC_TIMEZONE", "UTC")
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"PORTAL_CLINIC_TIMEZONE must be an IANA time zone such as Europe/Berlin, "
                f"got {name!r}"
            ) from None
        return cls(time_zone=zone)
