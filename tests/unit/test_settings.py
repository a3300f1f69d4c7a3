"""Settings are checked when a process starts: a bad value is one line naming it, exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.identity.settings import IdentitySettings
from services.runtime.settings import ConfigError, ServiceSettings, env_float, env_int
from tests.conftest import TEST_SERVICE_ENV


def test_numbers_are_checked_and_the_error_names_the_variable() -> None:
    assert env_int({}, "PORTAL_X", 3, minimum=1) == 3
    assert env_int({"PORTAL_X": " 7 "}, "PORTAL_X", 3, minimum=1) == 7
    with pytest.raises(ConfigError, match=r"^PORTAL_X must be a whole number, got 'abc'$"):
        env_int({"PORTAL_X": "abc"}, "PORTAL_X", 3)
    with pytest.raises(ConfigError, match=r"^PORTAL_X must be at least 1, got 0$"):
        env_int({"PORTAL_X": "0"}, "PORTAL_X", 3, minimum=1)
    assert env_float({"PORTAL_Y": "0.5"}, "PORTAL_Y", 1.0, above=0) == 0.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        with pytest.raises(ConfigError, match=r"^PORTAL_Y must be"):
            env_float({"PORTAL_Y": bad}, "PORTAL_Y", 1.0, above=0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORTAL_ARGON2_TIME_COST", "abc"),
        ("PORTAL_ARGON2_TIME_COST", "1"),  # below the enforced minimum
        ("PORTAL_ARGON2_MEMORY_KIB", "1024"),
        ("PORTAL_ARGON2_PARALLELISM", "0"),
        ("PORTAL_SESSION_IDLE_MINUTES", "0"),
        ("PORTAL_TEMP_PASSWORD_HOURS", "-3"),
    ],
)
def test_identity_refuses_bad_values_with_a_config_error(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable} must be"):
        IdentitySettings.from_env({variable: value})


def test_service_settings_check_their_values() -> None:
    env = TEST_SERVICE_ENV
    assert ServiceSettings.from_env("forms", env).log_level == "INFO"
    for variable, value in (
        ("PORTAL_LOG_LEVEL", "loud"),
        ("PORTAL_DB_POOL_MAX", "0"),
        ("PORTAL_SHUTDOWN_GRACE", "-1"),
    ):
        with pytest.raises(ConfigError, match=f"^{variable} must be"):
            ServiceSettings.from_env("forms", {**env, variable: value})
    with pytest.raises(ConfigError, match=r"^PORTAL_PRINCIPAL_PUBLIC_KEYS is not set$"):
        ServiceSettings.from_env("forms", {})


@pytest.mark.parametrize(
    ("service", "variable", "value"),
    [
        ("identity", "PORTAL_ARGON2_TIME_COST", "abc"),
        ("identity", "PORTAL_SESSION_MAX_HOURS", "forever"),
        ("forms", "PORTAL_DB_POOL_MAX", "many"),
        ("scheduling", "PORTAL_LOG_LEVEL", "loud"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_code_2(service: str, variable: str, value: str) -> None:
    env = {**os.environ, **TEST_SERVICE_ENV, variable: value}
    done = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"portal-{service}: {variable} must be")
    assert "Traceback" not in done.stderr and done.stdout == ""
