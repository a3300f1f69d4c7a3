"""forms' part of the staff work queue: forms to review and refill requests.

Each service keeps its own queue; the gateway merges them. Without a status the queue holds
what waits for staff: completed or signed forms (not yet reviewed) and pending refill requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.runtime.db import Conn

FORM_REVIEW = "form_review"
REFILL_REQUEST = "refill_request"
KINDS = (FORM_REVIEW, REFILL_REQUEST)
LIMIT = 500


@dataclass(frozen=True)
class Item:
    kind: str
    id: str
    patient_id: str
    summary: str
    created_at: datetime
    status: str


# What each kind selects ($1: the status filter, "" for what waits for staff); `items` and
# `count` share them, so the badge counts exactly what the list shows.
FORMS_TO_REVIEW = """cf.origin <> 'refill'
    AND CASE WHEN $1 = '' THEN cf.status IN ('completed', 'signed') ELSE cf.status = $1 END"""
REFILLS_WAITING = "status = CASE WHEN $1 = '' THEN 'requested' ELSE $1 END"


async def count(conn: Conn, kind: str, status: str) -> int:
    """How many items match, beyond LIMIT too, without reading any of them."""
    total = 0
    if kind in ("", FORM_REVIEW):
        total += await conn.fetchval(
            f"SELECT count(*) FROM chart_forms cf WHERE {FORMS_TO_REVIEW}", status
        )
    if kind in ("", REFILL_REQUEST):
        total += await conn.fetchval(
            f"SELECT count(*) FROM refill_requests WHERE {REFILLS_WAITING}", status
        )
    return total


async def items(conn: Conn, kind: str, status: str) -> list[Item]:
    found: list[Item] = []
    if kind in ("", FORM_REVIEW):
        rows = await conn.fetch(
            f"""SELECT cf.id, cf.patient_id, cf.status, v.title,
                       coalesce(cf.submitted_at, cf.updated_at) AS at
                FROM chart_forms cf
                JOIN form_versions v ON v.form_id = cf.form_id AND v.version = cf.form_version
                WHERE {FORMS_TO_REVIEW}
                ORDER BY at DESC, cf.id DESC LIMIT $2""",
            status,
            LIMIT,
        )
        found += [
            Item(FORM_REVIEW, str(r["id"]), str(r["patient_id"]), r["title"], r["at"], r["status"])
            for r in rows
        ]
    if kind in ("", REFILL_REQUEST):
        rows = await conn.fetch(
            f"""SELECT chart_form_id, patient_id, status, medication, dose, requested_at
                FROM refill_requests
                WHERE {REFILLS_WAITING}
                ORDER BY requested_at DESC, chart_form_id DESC LIMIT $2""",
            status,
            LIMIT,
        )
        found += [
            Item(
                REFILL_REQUEST,
                str(r["chart_form_id"]),
                str(r["patient_id"]),
                "Refill: " + " ".join(p for p in (r["medication"], r["dose"]) if p),
                r["requested_at"],
                r["status"],
            )
            for r in rows
        ]
    found.sort(key=lambda item: (item.created_at, item.id), reverse=True)
    return found[:LIMIT]
