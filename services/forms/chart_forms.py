"""Chart forms in the database: a form version placed in a patient's chart, with its answers.

Status after FHIR QuestionnaireResponse plus review: not-started → in-progress → completed or
signed → accepted, or returned (with a reason) → in-progress again. Withdrawn: the appointment
it was placed for was cancelled before the patient started it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import asyncpg

from services.forms.access import Entry
from services.forms.catalog import FORM_COLUMNS
from services.forms.definitions import Json
from services.runtime.db import Conn

EDITABLE = ("not-started", "in-progress", "returned")
DONE = ("completed", "signed", "accepted")
REVIEWABLE = ("completed", "signed")

SUMMARY = """cf.*, v.title, f.kind, p.position,
             cf.status IN ('completed', 'signed', 'accepted') AS done,
             EXISTS (SELECT 1 FROM signatures s WHERE s.chart_form_id = cf.id) AS signed"""
# What SUMMARY needs besides the chart form `cf` itself.
JOINED = """JOIN forms f ON f.id = cf.form_id
           JOIN form_versions v ON v.form_id = cf.form_id AND v.version = cf.form_version
           LEFT JOIN portal_forms p ON p.form_id = cf.form_id"""
JOINS = f"chart_forms cf {JOINED}"


def one(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row a statement that always returns one did return."""
    if row is None:
        raise LookupError("expected a row")
    return row


def answers_of(row: asyncpg.Record) -> dict[str, Json]:
    loaded: dict[str, Json] = json.loads(row["answers"])
    return loaded


async def list_for_patient(
    conn: Conn, patient_id: uuid.UUID, *, include_withdrawn: bool, audit: Entry
) -> list[asyncpg.Record]:
    """To do before done, each in the clinic's portal order (then by due date); the read's
    access-log row is appended by the same statement (one round trip, never one without the
    other)."""
    return await conn.fetch(
        f"""WITH logged AS (
                INSERT INTO access_log (actor_kind, actor_id, patient_id, action, source_address)
                VALUES ($3, $4, $1, $5, $6))
            SELECT {SUMMARY} FROM {JOINS}
            WHERE cf.patient_id = $1 AND ($2 OR cf.status <> 'withdrawn')
            ORDER BY done, cf.status = 'withdrawn', p.position NULLS LAST,
                     cf.due_at NULLS LAST, cf.assigned_at, lower(v.title), cf.id""",
        patient_id,
        include_withdrawn,
        audit.actor_kind,
        audit.actor_id,
        audit.action,
        audit.source_address,
    )


async def get(
    conn: Conn, chart_form_id: uuid.UUID, *, patient_id: uuid.UUID | None, lock: bool = False
) -> asyncpg.Record | None:
    """One chart form; with patient_id, only that patient's and never a withdrawn one."""
    return await conn.fetchrow(
        f"""SELECT {SUMMARY} FROM {JOINS}
            WHERE cf.id = $1
              AND ($2::uuid IS NULL OR (cf.patient_id = $2 AND cf.status <> 'withdrawn'))
            {"FOR UPDATE OF cf" if lock else ""}""",
        chart_form_id,
        patient_id,
    )


async def assign(
    conn: Conn,
    patient_id: uuid.UUID,
    form_id: uuid.UUID,
    *,
    assigned_by: str,
    due_at: datetime | None = None,
) -> uuid.UUID:
    chart_form_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO chart_forms (patient_id, form_id, form_version, origin, assigned_by, due_at)
           SELECT $1, id, current_version, 'staff', $3, $4 FROM forms WHERE id = $2
           RETURNING id""",
        patient_id,
        form_id,
        assigned_by,
        due_at,
    )
    return chart_form_id


async def save_answers(
    conn: Conn, chart_form_id: uuid.UUID, answers: dict[str, Json]
) -> asyncpg.Record:
    """Store the answers (in progress); returns the chart form as `get` reads it, from the same
    statement (one round trip instead of an UPDATE and a SELECT)."""
    return one(
        await conn.fetchrow(
            f"""WITH cf AS (
                    UPDATE chart_forms SET answers = $2::jsonb, status = 'in-progress',
                                           updated_at = now()
                    WHERE id = $1 RETURNING *)
                SELECT {SUMMARY} FROM cf {JOINED}""",
            chart_form_id,
            json.dumps(answers),
        )
    )


async def form_of(
    conn: Conn, chart_form_id: uuid.UUID, patient_id: uuid.UUID
) -> asyncpg.Record | None:
    """The patient's chart form's form version (columns of catalog.get_form) with the chart
    form's `status` and `signed`; None if it is not theirs or withdrawn. One read for a save."""
    return await conn.fetchrow(
        f"""SELECT {FORM_COLUMNS}, cf.status AS chart_status,
                   EXISTS (SELECT 1 FROM signatures s WHERE s.chart_form_id = cf.id) AS signed
            FROM chart_forms cf
            JOIN forms f ON f.id = cf.form_id
            JOIN form_versions v ON v.form_id = cf.form_id AND v.version = cf.form_version
            LEFT JOIN portal_forms p ON p.form_id = cf.form_id
            WHERE cf.id = $1 AND cf.patient_id = $2 AND cf.status <> 'withdrawn'""",
        chart_form_id,
        patient_id,
    )


async def save_answers_if_editable(
    conn: Conn,
    chart_form_id: uuid.UUID,
    form_version: int,
    answers: dict[str, Json],
    audit: Entry,
) -> asyncpg.Record | None:
    """Store the answers (in progress) and the access-log row in one statement, if the chart
    form still answers `form_version` and is editable and unsigned; returns it as `get` reads it,
    or None when it changed since it was read (the caller then takes the locked path).

    One statement commits atomically on its own: no transaction, row lock or round trips of
    BEGIN/COMMIT. A concurrent signature or submission holds the row until it commits, and the
    WHERE is checked again against the row it leaves (so a signed form is never overwritten).
    """
    return await conn.fetchrow(
        f"""WITH cf AS (
                UPDATE chart_forms SET answers = $3::jsonb, status = 'in-progress',
                                       updated_at = now()
                WHERE id = $1 AND form_version = $2 AND status = ANY($4::text[])
                  AND NOT EXISTS (SELECT 1 FROM signatures s WHERE s.chart_form_id = $1)
                RETURNING *),
            logged AS (
                INSERT INTO access_log (actor_kind, actor_id, patient_id, action,
                                        source_address, chart_form_id)
                SELECT $5, $6, cf.patient_id, $7, $8, cf.id FROM cf)
            SELECT {SUMMARY} FROM cf {JOINED}""",
        chart_form_id,
        form_version,
        json.dumps(answers),
        list(EDITABLE),
        audit.actor_kind,
        audit.actor_id,
        audit.action,
        audit.source_address,
    )


async def complete(
    conn: Conn, chart_form_id: uuid.UUID, answers: dict[str, Json], status: str
) -> asyncpg.Record:
    """Mark completed or signed with its final answers; returns the updated row."""
    return one(
        await conn.fetchrow(
            """UPDATE chart_forms SET answers = $2::jsonb, status = $3, return_reason = '',
                      submitted_at = clock_timestamp(), updated_at = now()
               WHERE id = $1 RETURNING *""",
            chart_form_id,
            json.dumps(answers),
            status,
        )
    )


async def review(
    conn: Conn, chart_form_id: uuid.UUID, status: str, reviewer: str, reason: str
) -> asyncpg.Record:
    return one(
        await conn.fetchrow(
            """UPDATE chart_forms SET status = $2, reviewed_by = $3,
                      reviewed_at = clock_timestamp(), return_reason = $4, updated_at = now()
               WHERE id = $1 RETURNING *""",
            chart_form_id,
            status,
            reviewer,
            reason,
        )
    )


async def review_queue(
    conn: Conn, limit: int, after: tuple[datetime, uuid.UUID] | None
) -> list[asyncpg.Record]:
    """Completed and signed forms, newest submission first (keyset pagination)."""
    return await conn.fetch(
        f"""SELECT {SUMMARY} FROM {JOINS}
            WHERE cf.status IN ('completed', 'signed') AND cf.origin <> 'refill'
              AND ($2::timestamptz IS NULL OR (cf.submitted_at, cf.id) < ($2, $3::uuid))
            ORDER BY cf.submitted_at DESC, cf.id DESC
            LIMIT $1""",
        limit,
        after[0] if after else None,
        after[1] if after else None,
    )


async def history(conn: Conn, chart_form_id: uuid.UUID) -> list[asyncpg.Record]:
    """The chart form's audit trail: every read and change, oldest first."""
    return await conn.fetch(
        """SELECT at, action, actor_kind, actor_id, source_address, user_agent, detail
           FROM access_log WHERE chart_form_id = $1 ORDER BY at, id""",
        chart_form_id,
    )
