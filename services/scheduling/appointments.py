"""Appointment rows: reading them with their provider and type, and the booking's SQL."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from google.protobuf.message import Message

from services.runtime import outbox
from services.runtime.db import Conn
from services.runtime.principal import Principal

SELECT = """SELECT a.id, a.patient_id, a.provider_id, a.appointment_type_id, a.starts_at,
       a.ends_at, a.status, a.cancellation_reason, a.created_at, a.updated_at,
       p.display_name AS provider_name, t.name AS appointment_type_name,
       t.cancellation_notice_minutes
    FROM appointments a
    JOIN providers p ON p.id = a.provider_id
    JOIN appointment_types t ON t.id = a.appointment_type_id"""


async def get(
    conn: Conn, appointment_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record | None:
    suffix = " FOR UPDATE OF a" if lock else ""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"{SELECT} WHERE a.id = $1{suffix}", appointment_id
    )
    return row


async def insert(
    conn: Conn,
    appointment_id: uuid.UUID,
    patient_id: uuid.UUID,
    provider_id: uuid.UUID,
    type_id: uuid.UUID,
    start: datetime,
    end: datetime,
    blocked: asyncpg.Range[datetime],
) -> None:
    """Raises asyncpg.ExclusionViolationError when the provider's time is taken."""
    await conn.execute(
        """INSERT INTO appointments (id, patient_id, provider_id, appointment_type_id, starts_at,
               ends_at, blocked, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'booked')""",
        appointment_id,
        patient_id,
        provider_id,
        type_id,
        start,
        end,
        blocked,
    )


async def move(
    conn: Conn,
    appointment_id: uuid.UUID,
    provider_id: uuid.UUID,
    start: datetime,
    end: datetime,
    blocked: asyncpg.Range[datetime],
) -> None:
    """Raises asyncpg.ExclusionViolationError when the new time is taken (nothing changes)."""
    await conn.execute(
        """UPDATE appointments SET provider_id = $2, starts_at = $3, ends_at = $4, blocked = $5,
               updated_at = now()
           WHERE id = $1""",
        appointment_id,
        provider_id,
        start,
        end,
        blocked,
    )


async def set_status(
    conn: Conn, appointment_id: uuid.UUID, status: str, reason: str | None = None
) -> None:
    await conn.execute(
        """UPDATE appointments SET status = $2,
               cancellation_reason = coalesce($3, cancellation_reason), updated_at = now()
           WHERE id = $1""",
        appointment_id,
        status,
        reason,
    )


@dataclass(frozen=True)
class Booking:
    """One booking as the single statement of `book` writes it."""

    appointment_id: uuid.UUID
    patient_id: uuid.UUID
    provider_id: uuid.UUID
    type_id: uuid.UUID
    start: datetime
    end: datetime
    blocked: asyncpg.Range[datetime]


DEADLOCK_ATTEMPTS = 5

# The key claim, the appointment, its event and the access log row in one statement, so one
# round trip and one implicit transaction: all of them are written or none (the exclusion
# constraint's violation, or a key already taken, writes nothing). A taken key inserts no
# appointment; a key held by a transaction in flight makes this wait for it to end.
BOOK = """
WITH claimed AS (
    INSERT INTO idempotency_keys (caller, key, request_hash, appointment_id)
    SELECT $8, $9, $10, $1 WHERE $9 <> ''
    ON CONFLICT DO NOTHING
    RETURNING true AS ok),
booked AS (
    INSERT INTO appointments (id, patient_id, provider_id, appointment_type_id, starts_at,
                              ends_at, blocked, status)
    SELECT $1, $2, $3, $4, $5, $6, $7, 'booked'
    WHERE $9 = '' OR EXISTS (SELECT FROM claimed)
    RETURNING id, created_at, updated_at),
event AS (
    INSERT INTO outbox (id, subject, aggregate_id, event_type, payload, trace_headers)
    SELECT $11, $12, $13, $14, $15, $16::jsonb FROM booked),
logged AS (
    INSERT INTO access_log (actor_kind, actor_id, actor_name, patient_id, appointment_id,
                            action, source_address)
    SELECT $17, $18, $19, $2, id, 'appointment.book', $20 FROM booked)
SELECT created_at, updated_at FROM booked"""


async def book(
    conn: Conn,
    booking: Booking,
    principal: Principal,
    event: Message,
    *,
    key: str = "",
    digest: str = "",
) -> asyncpg.Record | None:
    """(created_at, updated_at) of the new appointment; None when `key` is taken already.

    Raises asyncpg.ExclusionViolationError when the provider's time is taken (or
    DeadlockDetectedError when contention on it outlasts DEADLOCK_ATTEMPTS).
    """
    b = booking
    args = (
        b.appointment_id,
        b.patient_id,
        b.provider_id,
        b.type_id,
        b.start,
        b.end,
        b.blocked,
        f"{principal.kind}:{principal.subject}",
        key,
        digest,
        *outbox.event_values("portal.scheduling.appointment.booked", str(b.appointment_id), event),
        principal.kind,
        principal.subject,
        principal.name,
        principal.source,
    )
    for _ in range(DEADLOCK_ATTEMPTS - 1):
        try:
            return await conn.fetchrow(BOOK, *args)
        except asyncpg.DeadlockDetectedError:
            # Two inserts of overlapping times can each wait for the other in the exclusion
            # check; PostgreSQL aborts one. Nothing was written: try again, which meets the
            # winner's row (a clean exclusion violation) or a free time.
            continue
    return await conn.fetchrow(BOOK, *args)


def request_hash(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


async def claim_key(
    conn: Conn, caller: str, key: str, digest: str, appointment_id: uuid.UUID
) -> bool:
    """Record the key in the caller's transaction; False when it is already taken.

    A concurrent transaction holding the same key makes this wait until it ends, so the retry
    then finds the committed appointment (or, when that booking failed, claims the key itself).
    """
    claimed = await conn.fetchval(
        """INSERT INTO idempotency_keys (caller, key, request_hash, appointment_id)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
        caller,
        key,
        digest,
        appointment_id,
    )
    return bool(claimed)


async def find_key(conn: Conn, caller: str, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT request_hash, appointment_id FROM idempotency_keys WHERE caller = $1 AND key = $2",
        caller,
        key,
    )
    return row
