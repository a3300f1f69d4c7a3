"""`make run` from a clean copy of the tree: ready, then Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in listed.stdout.splitlines() if (ROOT / line).is_file()]


def processes_using(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            environ = proc.info["environ"] or {}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if marker in cmdline or marker in environ.get("PORTAL_DATA_DIR", ""):
            found.append(proc)
    return found


def test_make_run_from_a_clean_copy_then_ctrl_c(pg_server_url: str) -> None:
    copy = Path(tempfile.mkdtemp(prefix="portal-clean-copy-"))
    try:
        for name in tracked_files():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
        venv = Path(sys.prefix)
        data_dir = copy / ".data"
        gateway_port = free_port()
        env = {
            **os.environ,
            "PORTAL_DATA_DIR": str(data_dir),
            "PORTAL_GATEWAY_PORT": str(gateway_port),
            "PORTAL_IDENTITY_PORT": str(free_port()),
            "PORTAL_FORMS_PORT": str(free_port()),
            "PORTAL_SCHEDULING_PORT": str(free_port()),
            "PORTAL_EMBEDDED_PG_PORT": str(free_port()),
            "PORTAL_EMBEDDED_NATS_PORT": str(free_port()),
            "PORTAL_ADMIN_PASSWORD": "Clean-copy-admin-9",
        }
        for variable in ("PORTAL_DATABASE_URL", "PORTAL_NATS_URL", "PORTAL_PRINCIPAL_KEY"):
            env.pop(variable, None)  # the embedded servers, as on a fresh machine
        # Reuse this test run's virtualenv (-o: treat it as installed) instead of a new one.
        make = subprocess.Popen(
            ["make", "-o", f"{venv}/.installed", "run", f"VENV={venv}"],
            cwd=copy,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert make.stdout is not None
        output = []
        deadline = time.monotonic() + 120
        for line in make.stdout:
            output.append(line)
            if line.startswith("Ready in") or time.monotonic() > deadline:
                break
        assert any(line.startswith("Ready in") for line in output), "".join(output)
        with urllib.request.urlopen(f"http://127.0.0.1:{gateway_port}/readyz", timeout=5) as r:
            assert r.status == 200
        assert len(processes_using(str(data_dir))) >= 6  # 4 services, postgres, nats

        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        rest, _ = make.communicate(timeout=60)
        assert "Stopping" in rest
        assert processes_using(str(data_dir)) == []
    finally:
        shutil.rmtree(copy, ignore_errors=True)
