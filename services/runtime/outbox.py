"""Transactional outbox: events are rows written with the state change, then published.

    async with conn.transaction():
        await conn.execute("INSERT INTO patients ...")
        await emit(conn, "portal.identity.patient.registered", patient_id, PatientRegistered(...))

OutboxRelay publishes pending rows in order with Nats-Msg-Id = the event id (JetStream drops
duplicates) and the traceparent captured when the event was written, then marks them published.
Events of one aggregate are published one after another; different aggregates in parallel. A
broker outage only delays publishing.

The relay wakes as soon as events are committed. A service's own pool (LOCAL_WAKE) announces
them in process: the connection that wrote them wakes the process's relays when it returns to
the pool, its transaction over. Any other writer wakes them with NOTIFY (the insert trigger
notifies at commit). Service pools do not notify: PostgreSQL serialises the commits of all
notifying transactions (runtime migration 0005 says how much that cost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import asyncpg
import nats.errors
from google.protobuf.message import Message

from services.runtime import db, telemetry
from services.runtime.backoff import Backoff
from services.runtime.broker import Broker, BrokerUnavailable
from services.runtime.db import Conn
from services.runtime.waiting import wait_set

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "portal_outbox"
PURGE_INTERVAL = 3600.0  # seconds between deletions of long-published events
RELAY_LOCK = 0x706F7274616C7278  # pg_try_advisory_xact_lock key: one publishing relay at a time
EVENT_TYPE_HEADER = "Portal-Event-Type"
# Server settings of a pool whose events this process's relay learns of in process (no NOTIFY).
LOCAL_WAKE = {"portal.outbox_wake": "local"}
BUSY_RETRY = 0.05  # seconds before draining again while another replica's relay publishes

_relays: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()
_writers: set[int] = set()  # server pids of connections holding events not announced yet


def written(conn: Conn) -> None:
    """Note that `conn` wrote events: this process's relays wake when it returns to its pool."""
    _writers.add(conn.get_server_pid())


def released(conn: asyncpg.Connection) -> None:
    """db's release hook: a connection that wrote events is back, so they are committed (or
    rolled back: a relay woken for nothing finds nothing)."""
    if _writers and conn.get_server_pid() in _writers:
        _writers.discard(conn.get_server_pid())
        for relay in list(_relays):
            relay.wake()


async def emit(conn: Conn, subject: str, aggregate_id: str, message: Message) -> uuid.UUID:
    """Write an event in the caller's transaction; it is published only if that commits."""
    if not conn.is_in_transaction():
        raise RuntimeError("emit() must run inside the transaction of the state change")
    values = event_values(subject, aggregate_id, message)
    await conn.execute(
        """INSERT INTO outbox (id, subject, aggregate_id, event_type, payload, trace_headers)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb)""",
        *values,
    )
    written(conn)
    return values[0]


def event_values(
    subject: str, aggregate_id: str, message: Message
) -> tuple[uuid.UUID, str, str, str, bytes, str]:
    """An outbox row's (id, subject, aggregate_id, event_type, payload, trace_headers), for a
    statement that writes the event together with its state change (one round trip); call
    written(conn) once it ran."""
    return (
        uuid.uuid4(),
        subject,
        aggregate_id,
        message.DESCRIPTOR.full_name,
        message.SerializeToString(),
        json.dumps(telemetry.current_headers()),
    )


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        *,
        stream: str,
        subjects: list[str],
        batch_size: int = 500,
        publish_timeout: float = 5.0,
        poll_interval: float = 5.0,
        retention: timedelta = timedelta(days=1),
        before_mark: Callable[[Sequence[uuid.UUID]], Awaitable[None]] | None = None,
    ) -> None:
        self.pool = pool
        self.broker = broker
        self.stream = stream
        self.subjects = subjects
        self.batch_size = batch_size
        self.publish_timeout = publish_timeout
        self.poll_interval = poll_interval
        self.retention = retention
        self._before_mark = before_mark  # test seam: runs between publishing and marking
        self._wake = asyncio.Event()
        self._stream_ready = False
        self._next_purge = 0.0
        self._contended = False  # another replica's relay held the lock at the last drain

    def wake(self) -> None:
        """Events were committed: drain now."""
        self._wake.set()

    async def run(self) -> None:
        """Publish forever; cancel the task to stop.

        The stream is ensured first, before any event, so other services' consumers can bind.
        """
        listener: Conn | None = None
        backoff = Backoff()
        _relays.add(self)
        if released not in db.RELEASE_HOOKS:  # installed by the first relay, not on import
            db.RELEASE_HOOKS.append(released)
        try:
            while True:
                try:
                    await self.broker.wait_connected()
                    await self._ensure_stream()
                    if listener is None:
                        listener = await self._listen()
                    await self.drain()
                    backoff.reset()
                    await self._purge_if_due()
                    # While another replica publishes, events committed after its read would
                    # wait for the poll: look again soon.
                    await self._sleep(BUSY_RETRY if self._contended else self.poll_interval)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("outbox relay database error", extra={"error": type(exc).__name__})
                    if listener is not None:
                        await self._release(listener)
                    listener = None
                    await asyncio.sleep(backoff.next())
                except (_PublishFailed, nats.errors.Error) as exc:
                    log.warning("outbox relay cannot publish", extra={"error": type(exc).__name__})
                    await self._sleep(backoff.next())
        finally:
            _relays.discard(self)
            if listener is not None:
                await self._release(listener)

    async def _ensure_stream(self) -> None:
        if not self._stream_ready:
            await self.broker.ensure_stream(self.stream, self.subjects)
            self._stream_ready = True

    async def _purge_if_due(self) -> None:
        """Forget published events after `retention`; hourly, not on every batch."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL
        await self.pool.execute(
            "DELETE FROM outbox WHERE published_at < now() - $1::interval", self.retention
        )

    async def _listen(self) -> Conn:
        # One pooled connection stays checked out for LISTEN while the relay runs.
        conn = await self.pool.acquire()
        await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        self._wake.set()  # anything committed before we listened is picked up now
        return conn

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _release(self, conn: Conn) -> None:
        with contextlib.suppress(Exception):
            await conn.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            await self.pool.release(conn, timeout=2)  # type: ignore[arg-type]

    async def _sleep(self, seconds: float) -> None:
        await wait_set(self._wake, seconds)
        self._wake.clear()

    async def drain(self) -> int:
        """Publish everything pending now; return how many events were published."""
        total = 0
        while True:
            published, more = await self._publish_batch()
            total += published
            if not more:
                return total

    async def _publish_batch(self) -> tuple[int, bool]:
        async with self.pool.acquire() as conn, conn.transaction():
            self._contended = not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK
            )
            if self._contended:
                return 0, False  # another replica is publishing
            rows = await conn.fetch(
                """SELECT id, subject, aggregate_id, event_type, payload, trace_headers
                   FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1""",
                self.batch_size,
            )
            if not rows:
                return 0, False
            if not self.broker.connected:
                raise _PublishFailed
            await self._ensure_stream()
            by_aggregate: dict[str, list[asyncpg.Record]] = {}
            for row in rows:
                by_aggregate.setdefault(row["aggregate_id"], []).append(row)
            results = await asyncio.gather(
                *(self._publish_in_order(group) for group in by_aggregate.values())
            )
            done = [event_id for published in results for event_id in published]
            if self._before_mark is not None:
                await self._before_mark(done)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::uuid[])", done
            )
        if len(done) < len(rows):
            raise _PublishFailed
        return len(done), len(rows) == self.batch_size

    async def _publish_in_order(self, rows: list[asyncpg.Record]) -> list[uuid.UUID]:
        """Publish one aggregate's events in order, stopping at the first failure."""
        published: list[uuid.UUID] = []
        for row in rows:
            try:
                parent = json.loads(row["trace_headers"])
                with telemetry.publish_span(row["subject"], parent) as headers:
                    headers["Nats-Msg-Id"] = str(row["id"])
                    headers[EVENT_TYPE_HEADER] = row["event_type"]
                    await self.broker.js.publish(
                        row["subject"],
                        row["payload"],
                        timeout=self.publish_timeout,
                        stream=self.stream,
                        headers=headers,
                    )
            except Exception as exc:
                log.warning("publish failed, will retry", extra={"error": type(exc).__name__})
                if not isinstance(exc, TimeoutError | BrokerUnavailable | OSError):
                    # No responders or an API error: the stream may be gone (a new broker).
                    self._stream_ready = False
                return published
            published.append(row["id"])
        return published


class _PublishFailed(Exception):
    """Some events could not be published now; they stay pending."""
