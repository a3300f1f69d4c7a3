"""Waiting for an asyncio.Event with a time limit, without losing a cancellation.

On Python 3.11, `asyncio.wait_for(event.wait(), seconds)` returns normally when the task is
cancelled at the moment the event is set, and the cancellation is lost (CPython gh-86296): a
relay or listener cancelled at shutdown then goes on waiting. `asyncio.timeout` tells its own
expiry from a cancellation from outside.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` was set within `seconds` (False: the time ran out)."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
