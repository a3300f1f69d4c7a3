"""`make run` from a clean copy of the tree: ready, then Ctrl-C leaves nothing running; and a
service that dies under `make run` is restarted."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import IO

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devstack.stack import HANDED_OUT, SERVICES
from tests.conftest import drop_database, free_port
from tests.integration.events import eventually

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
        for variable in ("PORTAL_DATABASE_URL", "PORTAL_NATS_URL", *HANDED_OUT):
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
            # The ready message ends with this line, after the addresses and the demo data.
            if line.startswith("Press Ctrl-C") or time.monotonic() > deadline:
                break
        assert any(line.startswith("Ready in") for line in output), "".join(output)
        # The demo clinic's charts have medications to choose from on Refills.
        assert "  Medications      Ada Lovelace: Lisinopril, Atorvastatin" in "".join(output)
        # ... and booking a demo type puts visit forms in the chart.
        assert "  Visit forms      New patient visit: Medical history, Current medications" in (
            "".join(output)
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{gateway_port}/readyz", timeout=5) as r:
            assert r.status == 200
        assert len(processes_using(str(data_dir))) >= 6  # 4 services, postgres, nats

        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        rest, _ = make.communicate(timeout=60)
        assert "Stopping" in rest
        assert processes_using(str(data_dir)) == []
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def read_lines(stream: IO[str], into: queue.Queue[str | None]) -> None:
    for line in stream:
        into.put(line)
    into.put(None)  # the output ended: nothing more will come


def wait_for_line(
    lines: queue.Queue[str | None], seen: list[str], wanted: str, timeout: float
) -> str:
    """The first line (from now on) containing `wanted`; all lines read are kept in `seen`."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if wanted in line:
            return line
    raise AssertionError(f"no line with {wanted!r} within {timeout}s: {''.join(seen)}")


def child_pid(parent: psutil.Process, module: str) -> int | None:
    for proc in parent.children():
        try:
            if module in proc.cmdline():
                return proc.pid
        except psutil.NoSuchProcess:
            continue
    return None


async def forms_health(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="portal.forms.v1.FormsService"), timeout=1
            )
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def test_make_run_restarts_a_service_that_was_killed(pg_server_url: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="portal-heal-"))
    prefix = f"h{uuid.uuid4().hex[:10]}_"
    forms_port = free_port()
    env = {
        **os.environ,
        "PORTAL_DATA_DIR": str(folder / ".data"),
        "PORTAL_DATABASE_URL": pg_server_url,
        "PORTAL_DATABASE_PREFIX": prefix,
        "PORTAL_GATEWAY_PORT": str(free_port()),
        "PORTAL_IDENTITY_PORT": str(free_port()),
        "PORTAL_FORMS_PORT": str(forms_port),
        "PORTAL_SCHEDULING_PORT": str(free_port()),
        "PORTAL_EMBEDDED_NATS_PORT": str(free_port()),
        "PORTAL_ADMIN_PASSWORD": "Heal-admin-password-9",
        "PORTAL_DEMO_DATA": "false",
        "PORTAL_SHUTDOWN_DRAIN": "0.1",
    }
    env.pop("PORTAL_NATS_URL", None)  # a NATS of its own, so its streams start empty
    run = subprocess.Popen(
        [sys.executable, "-m", "services.devstack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert run.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=read_lines, args=(run.stdout, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        # Longer than the stack's own 120 s, so a slow start fails with the stack's reasons.
        wait_for_line(lines, seen, "Ready in", timeout=150)
        first = child_pid(psutil.Process(run.pid), "services.forms")
        assert first is not None

        os.kill(first, signal.SIGKILL)
        note = wait_for_line(lines, seen, "forms exited with code", timeout=30)
        assert "code -9 (SIGKILL); restarting in 0.5s" in note
        restarted = wait_for_line(lines, seen, "forms restarted", timeout=30)
        second = child_pid(psutil.Process(run.pid), "services.forms")
        assert second is not None and second != first
        assert f"(pid {second})" in restarted
        await eventually(lambda: forms_health(forms_port), lambda s: s == "SERVING", 60)
        assert run.poll() is None  # the stack itself never stopped

        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C still stops everything
        assert await asyncio.to_thread(run.wait, 60) == 0
        reader.join(10)
        while (line := lines.get_nowait() if not lines.empty() else None) is not None:
            seen.append(line)
        assert any("Stopping" in line for line in seen), "".join(seen)
        assert processes_using(str(folder)) == []
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
        for name in SERVICES:
            await drop_database(pg_server_url, f"{prefix}{name}")
        shutil.rmtree(folder, ignore_errors=True)
