"""Durable pull consumers: exactly-once handling through the inbox, dead letters for poison."""

from __future__ import annotations

import asyncio

import asyncpg

from portal.events.v1 import identity_pb2 as events
from services.runtime.broker import Broker
from services.runtime.consumer import Event, EventConsumer, Subscription
from services.runtime.db import Conn
from tests.integration.events import eventually


async def publish(broker: Broker, subject: str, event_id: str, patient_id: str) -> None:
    await broker.js.publish(
        subject,
        events.PatientRegistered(patient_id=patient_id).SerializeToString(),
        headers={
            "Nats-Msg-Id": event_id,
            "Portal-Event-Type": "portal.events.v1.PatientRegistered",
        },
    )


async def run_until(consumer: EventConsumer, condition) -> None:
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(condition, lambda ok: ok, timeout=20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_redelivered_event_is_handled_once(
    pool: asyncpg.Pool, broker: Broker, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    subject = f"{prefix}.patient.registered"
    handled: list[str] = []

    async def handler(conn: Conn, event: Event) -> None:
        handled.append(event.decode(events.PatientRegistered).patient_id)

    sub = Subscription("redelivery", name, subject, handler)
    consumer = EventConsumer(pool, broker, sub, fetch_timeout=0.5, ack_wait=1.0)
    event_id = "6f1c1f9e-7d59-4a43-9a4e-0d4b8a1f0c11"
    await publish(broker, subject, event_id, "p1")

    # First delivery: handled and committed, but the ack is lost (the process died).
    psub = await consumer.subscribe()
    [first] = await psub.fetch(1, timeout=5)
    assert await consumer.process(first) is True
    assert handled == ["p1"]

    # JetStream redelivers after ack_wait; the consumer acknowledges without handling again.
    async def settled() -> bool:
        info = await broker.js.consumer_info(name, "redelivery")
        # consumer_seq counts deliveries, the redelivery included.
        return info.num_ack_pending == 0 and (info.delivered.consumer_seq or 0) >= 2

    await run_until(consumer, settled)
    assert handled == ["p1"]
    assert await pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'redelivery'") == 1


async def test_a_poison_event_is_dead_lettered_and_the_next_one_still_handled(
    pool: asyncpg.Pool, broker: Broker, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    subject = f"{prefix}.patient.registered"
    attempts: dict[str, int] = {}

    async def handler(conn: Conn, event: Event) -> None:
        patient = event.decode(events.PatientRegistered).patient_id
        attempts[patient] = attempts.get(patient, 0) + 1
        await conn.execute(
            "INSERT INTO inbox (consumer, event_id, subject)"
            " VALUES ('side', gen_random_uuid(), 'x')"
        )
        if patient == "poison":
            raise ValueError("cannot handle this one")

    sub = Subscription("poison", name, subject, handler, max_deliveries=3)
    consumer = EventConsumer(pool, broker, sub, fetch_timeout=0.5, retry_base=0.05)
    await publish(broker, subject, "0b7f5b8e-2c1e-4a57-9a0e-8f3c2f0d1a01", "poison")
    await publish(broker, subject, "0b7f5b8e-2c1e-4a57-9a0e-8f3c2f0d1a02", "healthy")

    async def done() -> bool:
        dead = await pool.fetchval("SELECT count(*) FROM dead_letters")
        return dead == 1 and attempts.get("healthy") == 1

    await run_until(consumer, done)
    # Three deliveries; the first may also have been tried in a batch that was rolled back.
    assert attempts["poison"] in (3, 4)
    row = await pool.fetchrow("SELECT consumer, subject, deliveries, error FROM dead_letters")
    assert row is not None
    assert (row["consumer"], row["deliveries"]) == ("poison", 3)
    assert row["error"].startswith("ValueError")
    # The failed attempts' side effects were rolled back; only the healthy one's stayed.
    assert await pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = 'side'") == 1


async def test_a_fetched_batch_commits_once_and_a_failing_event_leaves_the_others_handled(
    pool: asyncpg.Pool, broker: Broker, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    calls: list[str] = []

    async def handler(conn: Conn, event: Event) -> None:
        patient = event.decode(events.PatientRegistered).patient_id
        calls.append(patient)
        if patient == "fails-once" and calls.count(patient) == 1:
            raise ValueError("not this time")
        await conn.execute(
            "INSERT INTO inbox (consumer, event_id, subject)"
            " VALUES ('batch-side', gen_random_uuid(), $1)",
            patient,
        )

    async def side_rows() -> list[str]:
        rows = await pool.fetch("SELECT subject FROM inbox WHERE consumer = 'batch-side'")
        return sorted(r["subject"] for r in rows)

    # Published before the consumer starts, so its first fetch brings them all.
    subject = f"{prefix}.patient.registered"
    patients = [f"p{n}" for n in range(10)]
    for n, patient in enumerate(patients):
        await publish(broker, subject, f"0b7f5b8e-2c1e-4a57-9a0e-8f3c2f0d1b{n:02d}", patient)
    together = EventConsumer(pool, broker, Subscription("batch", name, subject, handler))

    async def all_handled() -> bool:
        return await side_rows() == sorted(patients)

    await run_until(together, all_handled)
    transactions = await pool.fetchval(
        "SELECT count(DISTINCT xmin::text) FROM inbox WHERE consumer = 'batch'"
    )
    assert transactions == 1

    # One that fails inside a batch: the batch is rolled back, then each event is handled on
    # its own; the others are committed exactly once and the failing one is retried.
    subject = f"{prefix}.patient.other"
    more = ["q1", "fails-once", "q2"]
    for n, patient in enumerate(more):
        await publish(broker, subject, f"0b7f5b8e-2c1e-4a57-9a0e-8f3c2f0d1c{n:02d}", patient)
    calls.clear()
    one_by_one = EventConsumer(
        pool, broker, Subscription("batch-retry", name, subject, handler), retry_base=0.05
    )

    async def settled() -> bool:
        return await side_rows() == sorted(patients + more)

    await run_until(one_by_one, settled)
    assert calls.count("q1") == 2  # in the rolled-back batch, then on its own
    assert calls.count("fails-once") == 2
