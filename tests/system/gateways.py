"""More gateway processes in front of a running stack's services, as replicas behind an ingress.

Each is `python -m services.gateway` with the settings the stack gave its own gateway (the same
signing key, secret and backends) on a port of its own, changed by what the test passes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager

from services.devstack.stack import Stack, serves_everything
from tests.conftest import free_port


@contextmanager
def gateway_replicas(stack: Stack, count: int, env: Mapping[str, str]) -> Iterator[list[str]]:
    """Start `count` more gateways with `env` over the stack gateway's settings; their URLs
    once each serves with every backend ready. They are stopped on exit."""
    with ExitStack() as running:
        procs = []
        for _ in range(count):
            port = free_port()
            log = running.enter_context((stack.log_dir / f"gateway-{port}.log").open("ab"))
            settings = {**stack.child_env("gateway"), **env, "PORTAL_GATEWAY_PORT": str(port)}
            proc = subprocess.Popen(
                [sys.executable, "-m", "services.gateway"],
                env=settings,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            running.callback(_stop, proc)
            procs.append((f"http://127.0.0.1:{port}", proc))
        for url, proc in procs:
            _wait_ready(url, proc, timeout=30)
        yield [url for url, _ in procs]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the gateway at {url} exited with code {proc.returncode}")
        if serves_everything(url):
            return
        time.sleep(0.1)
    raise AssertionError(f"the gateway at {url} was not ready within {timeout:.0f}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
