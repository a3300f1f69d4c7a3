"""Transactional outbox and relay against real PostgreSQL and a real nats-server."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import pytest

from portal.events.v1 import identity_pb2 as events
from services.runtime import db
from services.runtime.broker import Broker
from services.runtime.consumer import Event, EventConsumer, Subscription
from services.runtime.db import Conn
from services.runtime.outbox import LOCAL_WAKE, RELAY_LOCK, OutboxRelay, emit
from tests.conftest import free_port, start_nats
from tests.integration.events import eventually, stream_messages


def registered(patient_id: str) -> events.PatientRegistered:
    return events.PatientRegistered(patient_id=patient_id)


async def pending(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


async def test_emit_outside_a_transaction_is_refused(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await emit(conn, "t.x.y", "a", registered("a"))


async def test_rolled_back_transaction_leaves_no_event(
    pool: asyncpg.Pool, broker: Broker, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    with contextlib.suppress(ZeroDivisionError):
        async with pool.acquire() as conn, conn.transaction():
            await emit(conn, f"{prefix}.patient.registered", "p1", registered("p1"))
            raise ZeroDivisionError  # the state change fails after the event was written
    relay = OutboxRelay(pool, broker, stream=name, subjects=[f"{prefix}.>"])
    assert await relay.drain() == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert await stream_messages(broker, name, f"{prefix}.>") == []


async def test_committed_event_is_published_once_even_if_relay_dies_before_marking(
    pool: asyncpg.Pool, broker: Broker, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    async with pool.acquire() as conn, conn.transaction():
        event_id = await emit(conn, f"{prefix}.patient.registered", "p1", registered("p1"))

    class Killed(Exception):
        pass

    async def die(ids: Sequence[uuid.UUID]) -> None:
        assert list(ids) == [event_id]  # it was published...
        raise Killed  # ...and the relay dies before recording that

    crashing = OutboxRelay(pool, broker, stream=name, subjects=[f"{prefix}.>"], before_mark=die)
    with pytest.raises(Killed):
        await crashing.drain()
    assert await pending(pool) == 1  # not marked: the next relay publishes it again

    fresh = OutboxRelay(pool, broker, stream=name, subjects=[f"{prefix}.>"])
    assert await fresh.drain() == 1
    assert await pending(pool) == 0
    messages = await stream_messages(broker, name, f"{prefix}.>")
    assert len(messages) == 1  # JetStream dropped the duplicate by Nats-Msg-Id
    assert messages[0].headers is not None
    assert messages[0].headers["Nats-Msg-Id"] == str(event_id)
    assert messages[0].headers["Portal-Event-Type"] == "portal.events.v1.PatientRegistered"
    assert events.PatientRegistered.FromString(messages[0].data).patient_id == "p1"


async def test_relay_wakes_on_notify_not_on_a_slow_poll(
    pool: asyncpg.Pool, broker: Broker, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    relay = OutboxRelay(pool, broker, stream=name, subjects=[f"{prefix}.>"], poll_interval=600)
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: pending(pool), lambda n: n == 0)  # relay is up and idle
        # Give the relay a moment to reach its idle wait, observed through the listener.
        await eventually(
            lambda: pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
            ),
            lambda n: n >= 1,
        )
        async with pool.acquire() as conn, conn.transaction():
            await emit(conn, f"{prefix}.patient.registered", "p1", registered("p1"))
        # Well under the 600 s poll interval: only NOTIFY can have woken it.
        await eventually(lambda: pending(pool), lambda n: n == 0, timeout=10)
        assert len(await stream_messages(broker, name, f"{prefix}.>")) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_service_pool_wakes_its_relay_in_process_without_notify(
    pool: asyncpg.Pool, database_url: str, broker: Broker, stream: tuple[str, str]
) -> None:
    """A pool with LOCAL_WAKE (a service's, whose relay runs in the same process) sends no
    NOTIFY, whose commit-time lock would serialise writers: the connection that wrote the
    event wakes the relay when it returns to the pool."""
    name, prefix = stream
    service_pool = await db.create_pool(database_url, max_size=3, server_settings=LOCAL_WAKE)
    listener = await asyncpg.connect(database_url)
    heard: list[str] = []
    await listener.add_listener("portal_outbox", lambda *args: heard.append(args[-1]))
    relay = OutboxRelay(
        service_pool, broker, stream=name, subjects=[f"{prefix}.>"], poll_interval=600
    )
    task = asyncio.create_task(relay.run())
    try:
        await eventually(lambda: pending(pool), lambda n: n == 0)  # relay is up and idle
        async with service_pool.acquire() as conn, conn.transaction():
            await emit(conn, f"{prefix}.patient.registered", "p1", registered("p1"))
        # Well under the 600 s poll interval, and no NOTIFY: the release woke it.
        await eventually(lambda: pending(pool), lambda n: n == 0, timeout=10)
        assert len(await stream_messages(broker, name, f"{prefix}.>")) == 1
        # Notifications arrive in commit order: once a later marker is heard, a NOTIFY of the
        # event's transaction would have been heard before it.
        await pool.execute("SELECT pg_notify('portal_outbox', 'marker')")
        await eventually(lambda: asyncio.sleep(0, heard), lambda got: "marker" in got)
        assert heard == ["marker"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await listener.close()
        await service_pool.close()


async def test_a_relay_retries_soon_while_another_replica_holds_the_lock(
    pool: asyncpg.Pool, database_url: str, broker: Broker, stream: tuple[str, str]
) -> None:
    """Two replicas: the one woken finds the other publishing; it looks again shortly, so an
    event committed after the other's read is not left for the poll."""
    name, prefix = stream
    service_pool = await db.create_pool(database_url, max_size=3, server_settings=LOCAL_WAKE)
    relay = OutboxRelay(
        service_pool, broker, stream=name, subjects=[f"{prefix}.>"], poll_interval=600
    )
    task = asyncio.create_task(relay.run())
    other = await asyncpg.connect(database_url)
    try:
        await eventually(lambda: pending(pool), lambda n: n == 0)
        # The other replica's relay holds the lock (its transaction stays open).
        holding = other.transaction()
        await holding.start()
        await other.execute("SELECT pg_advisory_xact_lock($1)", RELAY_LOCK)
        async with service_pool.acquire() as conn, conn.transaction():
            await emit(conn, f"{prefix}.patient.registered", "p2", registered("p2"))
        await eventually(lambda: asyncio.sleep(0, relay._contended), lambda busy: busy)
        await holding.rollback()  # the other replica is done (it never saw the event)
        await eventually(lambda: pending(pool), lambda n: n == 0, timeout=10)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await other.close()
        await service_pool.close()


async def test_events_written_during_a_broker_outage_arrive_after_restart_in_order(
    pool: asyncpg.Pool,
) -> None:
    """Stop nats-server, write events, start it again: all arrive, in order per aggregate."""
    folder = Path(tempfile.mkdtemp(prefix="portal-outage-"))
    port = free_port()
    server = start_nats(folder / "data", port)
    broker = Broker(server.url, name="outage-test")
    await broker.start()
    await broker.wait_connected()
    stream, prefix = "OUTAGE", "outage"
    await broker.ensure_stream(stream, [f"{prefix}.>"])

    seen: list[tuple[str, int]] = []

    async def handler(conn: Conn, event: Event) -> None:
        message = event.decode(events.LoginFailed)
        seen.append((message.account_id, message.consecutive_failures))

    relay = OutboxRelay(pool, broker, stream=stream, subjects=[f"{prefix}.>"], poll_interval=0.5)
    consumer = EventConsumer(
        pool,
        broker,
        Subscription("outage-test", stream, f"{prefix}.login.failed", handler),
        fetch_timeout=0.5,
    )
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(consumer.run())]
    try:
        server.stop()
        await eventually(lambda: _false_if(broker.connected), lambda ok: ok)

        aggregates = ["a", "b", "c"]
        for n in range(1, 6):
            for aggregate in aggregates:
                async with pool.acquire() as conn, conn.transaction():
                    await emit(
                        conn,
                        f"{prefix}.login.failed",
                        aggregate,
                        events.LoginFailed(account_id=aggregate, consecutive_failures=n),
                    )
        assert await pending(pool) == 15  # nothing could be published, nothing was lost
        assert seen == []

        server = start_nats(folder / "data", port)  # same data, same address
        await eventually(lambda: _len(seen), lambda n: n == 15, timeout=30)
        for aggregate in aggregates:
            assert [n for a, n in seen if a == aggregate] == [1, 2, 3, 4, 5]
        assert await pending(pool) == 0
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.close()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _false_if(connected: bool) -> bool:
    return not connected


async def _len(items: Sequence[object]) -> int:
    return len(items)
