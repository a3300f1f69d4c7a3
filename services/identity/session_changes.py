"""Tell watchers (the gateways' session caches) at once when resolved sessions may have changed.

The contract, which WatchSessionChanges carries over gRPC:
* `watch()` yields WATCHING first, and only once identity LISTENs on the channel that the
  triggers of migration 0010 notify (so nothing committed after that first message is missed);
  then CHANGED after each notification (notifications arriving while a watcher has not taken
  the last one yet are folded into one).
* When the listening connection is lost (or fails its periodic ping) every open watch ends: a
  watcher must then distrust what it holds until a new watch says WATCHING again. The hub
  connects again with backoff; watches opened meanwhile wait for that.
* After `run()` stops (shutdown), watches end at once and new ones end without a message.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg

from services.runtime.backoff import Backoff
from services.runtime.waiting import wait_set

log = logging.getLogger(__name__)
CHANNEL = "portal_sessions_changed"
# How often the listening connection proves it is alive; a dead one that never said so (a
# half-open TCP connection) would otherwise keep caches trusted without news.
PING_SECONDS = 5.0
# The listening connection's name in pg_stat_activity.
APPLICATION_NAME = "portal-identity-session-changes"
LOST = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def connector(dsn: str) -> Callable[[], Awaitable[asyncpg.Connection]]:
    """Opens the listening connection: its own, outside the pool (LISTEN is session state
    that a pooled connection would lose on release)."""

    async def connect() -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(
            dsn, timeout=5, server_settings={"application_name": APPLICATION_NAME}
        )
        return conn

    return connect


class Change(enum.Enum):
    WATCHING = "watching"
    CHANGED = "changed"


class _Watcher:
    def __init__(self) -> None:
        self.news = asyncio.Event()
        self.ended = False


class SessionChanges:
    def __init__(self) -> None:
        self._watchers: set[_Watcher] = set()
        self._live = asyncio.Event()
        self._closed = False

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    async def watch(self) -> AsyncIterator[Change]:
        while not self._live.is_set():
            if self._closed:
                return
            await self._live.wait()
        if self._closed:
            return
        watcher = _Watcher()
        self._watchers.add(watcher)  # in the same step as the check: no notification is lost
        try:
            yield Change.WATCHING
            while True:
                await watcher.news.wait()
                watcher.news.clear()
                if watcher.ended:
                    return
                yield Change.CHANGED
        finally:
            self._watchers.discard(watcher)

    async def run(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        """Keep one LISTEN connection, opened by `connect` (a dedicated one, not a pooled one);
        runs until cancelled."""
        backoff = Backoff()
        try:
            while True:
                try:
                    await self._listen(connect, backoff)
                except LOST as exc:
                    log.warning("session change listener lost", extra={"error": type(exc).__name__})
                self._end_all()
                await asyncio.sleep(backoff.next())
        finally:
            self._closed = True
            self._end_all()
            self._live.set()  # wakes watches still waiting, which now end

    async def _listen(
        self, connect: Callable[[], Awaitable[asyncpg.Connection]], backoff: Backoff
    ) -> None:
        conn = await connect()
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
            backoff.reset()
            self._live.set()
            log.info("listening for session changes")
            while not lost.is_set():
                if not await wait_set(lost, PING_SECONDS):
                    await conn.fetchval("SELECT 1", timeout=PING_SECONDS)
            raise ConnectionResetError("listening connection closed")
        finally:
            self._live.clear()
            conn.terminate()

    def _on_notify(self, *_: object) -> None:
        for watcher in self._watchers:
            watcher.news.set()

    def _end_all(self) -> None:
        self._live.clear()
        for watcher in self._watchers:
            watcher.ended = True
            watcher.news.set()
        self._watchers.clear()
