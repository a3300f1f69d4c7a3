"""`make run` restarts a child that died, waiting longer each time it keeps crashing.

The children are real processes: forms with a bad setting exits at once with code 2, the
quickest real crash there is. Time is passed to `supervise` so that no test waits for a delay.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devstack.stack import CRASH_LOOP, RESTART_FIRST, Stack, StackConfig
from tests.conftest import TEST_SERVICE_ENV

CRASHING = {**TEST_SERVICE_ENV, "PORTAL_LOG_LEVEL": "loud"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    config = StackConfig(
        data_dir=tmp_path,
        database_url=None,
        nats_url=None,
        gateway_host="127.0.0.1",
        gateway_port=0,
        service_ports={},
        pg_port=0,
        nats_port=0,
    )
    (tmp_path / "logs").mkdir()
    stack = Stack(config, os.environ)
    yield stack
    stack.stop()


def crash(stack: Stack) -> int:
    """Wait for forms to exit (it does at once); its pid."""
    proc = stack.children["forms"]
    assert proc.wait(60) == 2
    return proc.pid


def test_a_crashing_child_is_restarted_with_growing_delays_and_reported(stack: Stack) -> None:
    stack.launch("forms", {**os.environ, **CRASHING})
    delays = []
    pids = [crash(stack)]
    for attempt in range(1, CRASH_LOOP + 1):
        now = time.monotonic()
        (note,) = stack.supervise(now)
        delay = RESTART_FIRST * 2 ** (attempt - 1)
        assert note.startswith(f"forms exited with code 2; restarting in {delay:.1f}s")
        # The third quick crash in a row says so, with what the service printed.
        assert ("crashes in a row" in note) == (attempt >= CRASH_LOOP)
        if attempt >= CRASH_LOOP:
            assert "PORTAL_LOG_LEVEL must be one of" in note
        assert stack.supervise(now + delay - 0.01) == []  # not yet
        (note,) = stack.supervise(now + delay)
        assert note == f"forms restarted (pid {stack.children['forms'].pid})"
        delays.append(delay)
        pids.append(crash(stack))
    assert delays == [0.5, 1.0, 2.0]
    assert len(set(pids)) == len(pids)


def test_a_child_stopped_on_purpose_stays_stopped_until_started(stack: Stack) -> None:
    stack.launch("forms", {**os.environ, **CRASHING})
    first = crash(stack)
    assert stack.stop_service("forms") == 2
    assert stack.supervise(time.monotonic() + 3600) == []
    assert stack.exited() is None  # a stopped child is not an unexpected exit
    stack.start_service("forms")
    assert crash(stack) != first
    (note,) = stack.supervise()
    assert note.startswith("forms exited with code 2; restarting in")
