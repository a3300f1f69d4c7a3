"""scheduling's part of the staff work queue: appointments patients changed in the portal.

The access log says who made each change, so an appointment is in the queue while its latest
booking change (book, cancel or reschedule) was made by the patient; a change staff make later
(a reschedule, a cancel) takes it out. Without a status filter the queue holds what still
matters to staff: changes to appointments that have not started yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from services.runtime.db import Conn

KIND = "portal_booking"
# The access log's action of each change, and the status the queue gives it.
CHANGES = {
    "appointment.book": "booked",
    "appointment.cancel": "cancelled",
    "appointment.reschedule": "rescheduled",
}
STATUSES = tuple(CHANGES.values())
LABELS = {"booked": "Booked", "cancelled": "Cancelled", "rescheduled": "Rescheduled"}
DEFAULT_LIMIT, MAX_LIMIT = 100, 500

_QUEUE = """WITH latest AS (
        SELECT DISTINCT ON (l.appointment_id) l.appointment_id, l.action, l.actor_kind, l.at
        FROM access_log l
        WHERE l.action IN ('appointment.book', 'appointment.cancel', 'appointment.reschedule')
          AND l.appointment_id IS NOT NULL
        ORDER BY l.appointment_id, l.at DESC, l.id DESC
    ), queue AS (
        SELECT a.id, a.patient_id, a.starts_at, t.name AS type_name,
               p.display_name AS provider_name, latest.at,
               CASE latest.action WHEN 'appointment.book' THEN 'booked'
                    WHEN 'appointment.cancel' THEN 'cancelled' ELSE 'rescheduled' END AS status
        FROM latest
        JOIN appointments a ON a.id = latest.appointment_id
        JOIN providers p ON p.id = a.provider_id
        JOIN appointment_types t ON t.id = a.appointment_type_id
        WHERE latest.actor_kind = 'patient'
    )"""
_WHERE = "CASE WHEN $1 = '' THEN starts_at > now() ELSE status = $1 END"


@dataclass(frozen=True)
class Item:
    id: str
    patient_id: str
    summary: str
    created_at: datetime
    status: str


def summary(status: str, type_name: str, provider: str, starts_at: datetime, zone: tzinfo) -> str:
    """What the patient did, to which appointment; no patient data beyond that."""
    local = starts_at.astimezone(zone)
    return (
        f"{LABELS[status]} online: {type_name} with {provider}, "
        f"{local:%a} {local.day} {local:%b %Y, %H:%M %Z}"
    )


async def count(conn: Conn, status: str) -> int:
    total: int = await conn.fetchval(f"{_QUEUE} SELECT count(*) FROM queue WHERE {_WHERE}", status)
    return total


async def items(conn: Conn, status: str, limit: int, zone: tzinfo) -> tuple[list[Item], int]:
    """The queue newest first (at most `limit`), and how many items match in all."""
    rows = await conn.fetch(
        f"""{_QUEUE} SELECT *, count(*) OVER () AS total FROM queue WHERE {_WHERE}
            ORDER BY at DESC, id DESC LIMIT $2""",
        status,
        limit,
    )
    found = [
        Item(
            id=str(r["id"]),
            patient_id=str(r["patient_id"]),
            summary=summary(r["status"], r["type_name"], r["provider_name"], r["starts_at"], zone),
            created_at=r["at"],
            status=r["status"],
        )
        for r in rows
    ]
    return found, (rows[0]["total"] if rows else 0)
