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


async def move(
    conn: Conn,
    appointment_id: uuid.UUID,
    provider_id: uuid.UUID,
    start: datetime,
    end: datetime,
    blocked: asyncpg.Range[datetime],
) -> None:
    """Raises asyncpg.ExclusionViolationError when the new time is taken, by the provider or the
    patient (nothing changes; see `patient_clash`)."""
    # A moved appointment is checked against the patient's others again, even one that
    # overlapped them before the rule (migration 0010).
    await conn.execute(
        """UPDATE appointments SET provider_id = $2, starts_at = $3, ends_at = $4, blocked = $5,
               overlap_allowed = false, updated_at = now()
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


PATIENT_NO_OVERLAP = "appointments_patient_no_overlap"  # migration 0010


def patient_clash(exc: asyncpg.ExclusionViolationError) -> bool:
    """The time is refused because the patient has another appointment then, not the provider."""
    return exc.constraint_name == PATIENT_NO_OVERLAP


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


# The appointment, its key, its event and the access log row in one statement: one round trip
# and one implicit transaction, so all of them are written or none. ON CONFLICT DO NOTHING on
# the appointment makes PostgreSQL check the exclusion constraints (the provider's time, the
# patient's) as a speculative insertion: overlapping bookings in flight wait for one another
# instead of deadlocking, and a taken time writes nothing and returns no row. A key already
# stored fails the statement (unique violation), after waiting for a transaction in flight
# that holds it.
BOOK = """
WITH booked AS (
    INSERT INTO appointments (id, patient_id, provider_id, appointment_type_id, starts_at,
                              ends_at, blocked, status)
    VALUES ($1, $2, $3, $4, $5, $6, $7, 'booked')
    ON CONFLICT DO NOTHING
    RETURNING id, created_at, updated_at),
claimed AS (
    INSERT INTO idempotency_keys (caller, key, request_hash, appointment_id)
    SELECT $8, $9, $10, id FROM booked WHERE $9 <> ''),
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
    """(created_at, updated_at) of the new appointment; None when the time is taken.

    Raises asyncpg.UniqueViolationError when `key` is stored already (nothing is written).
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
    row: asyncpg.Record | None = await conn.fetchrow(BOOK, *args)
    if row is not None:
        outbox.written(conn)
    return row


def request_hash(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()


async def find_key(conn: Conn, caller: str, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT request_hash, appointment_id FROM idempotency_keys WHERE caller = $1 AND key = $2",
        caller,
        key,
    )
    return row
