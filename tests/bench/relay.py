"""Outbox relay publish rate as a ratio to raw JetStream publish-with-ack, same run."""

from __future__ import annotations

import contextlib
import time
import uuid

from portal.events.v1 import identity_pb2 as events
from services.runtime import db
from services.runtime.broker import Broker
from services.runtime.outbox import OutboxRelay, emit

EVENTS = 5000
AGGREGATES = 500


async def run(pg_url: str, nats_url: str) -> dict[str, float]:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    await db.ensure_database(pg_url, name)
    pool = await db.create_pool(db.with_database(pg_url, name), max_size=4)
    async with pool.acquire() as conn:
        await db.migrate(conn, db.runtime_migrations())
    broker = Broker(nats_url, name="bench")
    await broker.start()
    await broker.wait_connected()
    payload = events.LoginFailed(account_id=str(uuid.uuid4()), consecutive_failures=1)
    try:
        # Raw baseline: one publish after another, each waiting for the stream's ack.
        await broker.ensure_stream("BENCH_RAW", ["benchraw.>"])
        data = payload.SerializeToString()
        started = time.perf_counter()
        for i in range(EVENTS):
            await broker.js.publish(
                "benchraw.login.failed", data, headers={"Nats-Msg-Id": f"raw-{i}"}
            )
        raw_rate = EVENTS / (time.perf_counter() - started)

        # The relay: events committed to the outbox (many aggregates, as in production).
        async with pool.acquire() as conn, conn.transaction():
            for i in range(EVENTS):
                await emit(conn, "benchrelay.login.failed", f"a{i % AGGREGATES}", payload)
        relay = OutboxRelay(pool, broker, stream="BENCH_RELAY", subjects=["benchrelay.>"])
        started = time.perf_counter()
        published = await relay.drain()
        relay_rate = published / (time.perf_counter() - started)
        assert published == EVENTS
        info = await broker.js.stream_info("BENCH_RELAY")
        assert info.state.messages == EVENTS
    finally:
        for stream in ("BENCH_RAW", "BENCH_RELAY"):
            with contextlib.suppress(Exception):  # best-effort clean-up of a bench stream
                await broker.js.delete_stream(stream)
        await broker.close()
        await pool.close()
    return {
        "raw_publish_per_s": raw_rate,
        "relay_publish_per_s": relay_rate,
        "ratio": relay_rate / raw_rate,
    }
