"""wait_set: a time-limited wait for an event that never loses a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.waiting import wait_set


async def test_a_cancellation_as_the_event_is_set_still_cancels() -> None:
    """The case asyncio.wait_for loses on Python 3.11: the event is set and the waiting task
    cancelled before it runs again (a relay woken at the moment it is stopped)."""
    event = asyncio.Event()
    waiting = asyncio.create_task(wait_set(event, 600))
    await asyncio.sleep(0)  # the task now waits on the event
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_says_whether_the_event_was_set_in_time() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 600) is True
