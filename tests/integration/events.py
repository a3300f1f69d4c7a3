"""Helpers for reading what reached a JetStream stream, and for waiting on conditions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.msg import Msg

from services.runtime.broker import Broker

T = TypeVar("T")


async def stream_messages(broker: Broker, stream: str, subject: str) -> list[Msg]:
    """Every message in the stream (on `subject`), oldest first."""
    info = await broker.js.stream_info(stream)
    count = info.state.messages
    if count == 0:
        return []
    sub = await broker.js.pull_subscribe(subject, stream=stream)
    messages: list[Msg] = []
    while len(messages) < count:
        messages.extend(await sub.fetch(count - len(messages), timeout=5))
    await sub.unsubscribe()
    return messages


async def eventually(
    probe: Callable[[], Awaitable[T]], until: Callable[[T], bool], timeout: float = 15.0
) -> T:
    """Poll `probe` until `until(value)` holds; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not until(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(0.05)
        value = await probe()
    return value
