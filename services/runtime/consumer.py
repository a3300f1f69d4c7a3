"""Durable pull consumers whose handlers run exactly once per event.

Each event is handled in a database transaction that first records the event id in `inbox`;
a redelivered event finds its row and is only acknowledged. The events of one fetch share a
transaction (one commit for all of them: under load a fetch brings dozens); when any of them
fails, they are handled again one transaction each, so only the failing one is retried. A
failing handler is retried with growing delays; after `max_deliveries` the event is recorded
in `dead_letters` for operators and terminated, so one poison message never blocks the others.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import nats.errors
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.runtime import telemetry
from services.runtime.backoff import Backoff
from services.runtime.broker import Broker, BrokerUnavailable
from services.runtime.db import Conn
from services.runtime.outbox import EVENT_TYPE_HEADER

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Event:
    id: str
    subject: str
    event_type: str
    payload: bytes
    deliveries: int

    def decode(self, message_type: type[M]) -> M:
        if self.event_type and self.event_type != message_type.DESCRIPTOR.full_name:
            raise ValueError(f"event {self.id} is a {self.event_type}, not {message_type.__name__}")
        return message_type.FromString(self.payload)


Handler = Callable[[Conn, Event], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    durable: str  # the consumer's durable name, e.g. "forms-patient-registered"
    stream: str  # the owning service's stream, e.g. "IDENTITY"
    subject: str  # e.g. "portal.identity.patient.registered"
    handler: Handler
    max_deliveries: int = 5


class EventConsumer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        broker: Broker,
        subscription: Subscription,
        *,
        batch: int = 32,
        fetch_timeout: float = 5.0,
        retry_base: float = 0.5,
        ack_wait: float = 30.0,
    ) -> None:
        self.pool = pool
        self.broker = broker
        self.sub = subscription
        self.batch = batch
        self.fetch_timeout = fetch_timeout
        self.retry_base = retry_base
        self.ack_wait = ack_wait

    async def run(self) -> None:
        """Consume forever; cancel the task to stop."""
        backoff = Backoff()
        while True:
            try:
                await self.broker.wait_connected()
                psub = await self.subscribe()
                backoff.reset()
                while True:
                    try:
                        msgs = await psub.fetch(self.batch, timeout=self.fetch_timeout)
                    except nats.errors.TimeoutError:
                        continue
                    await self.handle_all(msgs)
            except asyncio.CancelledError:
                raise
            except (
                nats.errors.Error,
                BrokerUnavailable,
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
            ) as exc:
                # Broker or database trouble (or the stream does not exist yet): try again.
                log.warning(
                    "consumer paused",
                    extra={"consumer": self.sub.durable, "error": type(exc).__name__},
                )
                await asyncio.sleep(backoff.next())

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        """Bind to (creating if needed) this subscription's durable pull consumer."""
        return await self.broker.js.pull_subscribe(
            self.sub.subject,
            durable=self.sub.durable,
            stream=self.sub.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self.ack_wait,
                max_deliver=-1,  # we count deliveries ourselves and dead-letter
            ),
        )

    async def handle_all(self, msgs: list[Msg]) -> None:
        """Process a fetched batch and acknowledge it: together when all succeed, else one by
        one (each retried or dead-lettered on its own)."""
        if len(msgs) > 1 and await self._process_together(msgs):
            for msg in msgs:
                await msg.ack()
            return
        for msg in msgs:
            await self.handle(msg)

    async def handle(self, msg: Msg) -> None:
        """Process one message and acknowledge it (or schedule its retry)."""
        if await self.process(msg):
            await msg.ack()

    async def process(self, msg: Msg) -> bool:
        """Run the handler once per event id; False when it failed (retry or dead letter)."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._handle_new(conn, [msg])
        except Exception as exc:
            await self._failed(msg, self._event(msg), exc)
            return False
        return True

    async def _process_together(self, msgs: list[Msg]) -> bool:
        """All of `msgs` in one transaction; False (nothing written) when any handler fails."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._handle_new(conn, msgs)
        except Exception as exc:
            log.info(
                "batch failed, handling its events one by one",
                extra={"consumer": self.sub.durable, "error": type(exc).__name__},
            )
            return False
        return True

    async def _handle_new(self, conn: Conn, msgs: list[Msg]) -> None:
        """Record the events' ids in the inbox in one statement; run the handler for those new
        to it (a redelivered event finds its row and is only acknowledged)."""
        events = [self._event(msg) for msg in msgs]
        ids = [uuid.UUID(e.id) for e in events]  # not a UUID: the handling fails
        rows = await conn.fetch(
            """INSERT INTO inbox (consumer, event_id, subject)
               SELECT $1, e.id, e.subject FROM unnest($2::uuid[], $3::text[]) AS e(id, subject)
               ON CONFLICT DO NOTHING RETURNING event_id""",
            self.sub.durable,
            ids,
            [e.subject for e in events],
        )
        new = {r["event_id"] for r in rows}
        for msg, event, event_id in zip(msgs, events, ids, strict=True):
            if event_id in new:
                new.discard(event_id)  # the same event twice in one fetch: once
                with telemetry.consume_span(msg.subject, msg.headers or {}):
                    await self.sub.handler(conn, event)

    @staticmethod
    def _event(msg: Msg) -> Event:
        headers = msg.headers or {}
        return Event(
            id=headers.get("Nats-Msg-Id", ""),
            subject=msg.subject,
            event_type=headers.get(EVENT_TYPE_HEADER, ""),
            payload=msg.data,
            deliveries=msg.metadata.num_delivered or 1,
        )

    async def _failed(self, msg: Msg, event: Event, exc: Exception) -> None:
        extra = {
            "consumer": self.sub.durable,
            "event_id": event.id,
            "deliveries": event.deliveries,
            "error": type(exc).__name__,
        }
        if event.deliveries < self.sub.max_deliveries:
            log.warning("event handler failed, will retry", extra=extra)
            await msg.nak(delay=min(self.retry_base * 2 ** (event.deliveries - 1), 60.0))
            return
        log.error("event handler failed for the last time, dead-lettered", extra=extra)
        async with self.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO dead_letters
                       (consumer, event_id, subject, event_type, payload, deliveries, error)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                self.sub.durable,
                event.id,
                event.subject,
                event.event_type,
                event.payload,
                event.deliveries,
                f"{type(exc).__name__}: {exc}"[:2000],
            )
        await msg.term()
