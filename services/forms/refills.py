"""Prescription refill requests: a chart form of kind refill plus its request row.

The chart form (the first refill form in the portal catalog) holds the request as that form's
answers, so it reads like any other form in the chart; `refill_requests` holds the request's own
fields and the clinic's decision, which chart-form statuses cannot express. Requested: the chart
form is completed; decided: accepted (reviewed); withdrawn: withdrawn.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import asyncpg

from services.forms import fields
from services.forms.fields import Field
from services.runtime.db import Conn

PENDING = "requested"
DECISIONS = ("approved", "denied", "needs_appointment")
STATUSES = (PENDING, *DECISIONS, "withdrawn")
MAX_FIELD = 200
MAX_NOTE = 2000
COLUMNS = """r.*, cf.form_id, cf.form_version"""
FROM = """refill_requests r JOIN chart_forms cf ON cf.id = r.chart_form_id"""


@dataclass(frozen=True)
class Fields:
    medication: str
    dose: str
    quantity: str
    pharmacy: str
    note: str


def validate(
    medication: str, dose: str, quantity: str, pharmacy: str, note: str
) -> tuple[Fields, dict[str, list[str]]]:
    values, errors = fields.check(
        [
            Field("medication", medication, MAX_FIELD),
            Field("dose", dose, MAX_FIELD),
            Field("quantity", quantity, MAX_FIELD),
            Field("pharmacy", pharmacy, MAX_FIELD),
            Field("note", note, MAX_NOTE, multiline=True),
        ]
    )
    if not values.get("medication") and "medication" not in errors:
        errors["medication"] = ["Choose one of your medications or type its name."]
    return Fields(**{k: values.get(k, "") for k in Fields.__dataclass_fields__}), errors


async def portal_form(conn: Conn) -> asyncpg.Record | None:
    """The refill form patients use: the first of kind refill in the portal, if any."""
    return await conn.fetchrow(
        """SELECT f.id, f.current_version FROM forms f JOIN portal_forms p ON p.form_id = f.id
           WHERE f.kind = 'refill' ORDER BY p.position LIMIT 1"""
    )


def answers(fields: Fields) -> dict[str, str]:
    """The request as the library refill form's answers (empty ones left out)."""
    return {
        k: v
        for k, v in (
            ("medication", fields.medication),
            ("dose", fields.dose),
            ("pharmacy", fields.pharmacy),
            ("notes", fields.note),
        )
        if v
    }


async def create(
    conn: Conn,
    patient_id: uuid.UUID,
    form: asyncpg.Record,
    fields: Fields,
    medication_id: uuid.UUID | None,
) -> uuid.UUID:
    """The chart form (completed now) and its request row; the caller's transaction."""
    await conn.execute(
        """UPDATE form_versions SET published_at = now()
           WHERE form_id = $1 AND version = $2 AND published_at IS NULL""",
        form["id"],
        form["current_version"],
    )
    chart_form_id: uuid.UUID = await conn.fetchval(
        """INSERT INTO chart_forms (patient_id, form_id, form_version, status, origin, answers,
                                    assigned_by, submitted_at)
           VALUES ($1, $2, $3, 'completed', 'refill', $4::jsonb, 'portal', clock_timestamp())
           RETURNING id""",
        patient_id,
        form["id"],
        form["current_version"],
        json.dumps(answers(fields)),
    )
    await conn.execute(
        """INSERT INTO refill_requests (chart_form_id, patient_id, medication_id, medication,
                                        dose, quantity, pharmacy, note)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        chart_form_id,
        patient_id,
        medication_id,
        fields.medication,
        fields.dose,
        fields.quantity,
        fields.pharmacy,
        fields.note,
    )
    return chart_form_id


# How names and doses are compared: without case or extra spaces.
_PLAIN = "lower(regexp_replace(btrim({}), '[[:space:]]+', ' ', 'g'))"


async def pending_for(conn: Conn, patient_id: uuid.UUID, fields: Fields) -> str:
    """The patient's pending request for the same medicine, as the patient reads it; '' when
    there is none. The same medicine: "name dose" alike, or the same name where either request
    gives no dose ("Atorvastatin" asks again for a pending "Atorvastatin 20 mg"). Compared
    without case or extra spaces. Locks the chart row first, so two requests of one patient are
    checked one after the other (the caller's transaction)."""
    await conn.execute("SELECT 1 FROM charts WHERE patient_id = $1 FOR NO KEY UPDATE", patient_id)
    whole, name, dose = (
        _PLAIN.format(x) for x in ("medication || ' ' || dose", "medication", "dose")
    )
    wanted_whole, wanted_name, wanted_dose = (_PLAIN.format(f"${n}::text") for n in (3, 4, 5))
    found: str | None = await conn.fetchval(
        f"""SELECT btrim(medication || ' ' || dose) FROM refill_requests
            WHERE patient_id = $1 AND status = $2
              AND ({whole} = {wanted_whole}
                   OR ({name} = {wanted_name} AND ({dose} = '' OR {wanted_dose} = '')))
            ORDER BY requested_at LIMIT 1""",
        patient_id,
        PENDING,
        f"{fields.medication} {fields.dose}",
        fields.medication,
        fields.dose,
    )
    return found or ""


async def get(
    conn: Conn, refill_id: uuid.UUID, *, patient_id: uuid.UUID | None, lock: bool = False
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM {FROM}
            WHERE r.chart_form_id = $1 AND ($2::uuid IS NULL OR r.patient_id = $2)
            {"FOR UPDATE OF r, cf" if lock else ""}""",
        refill_id,
        patient_id,
    )


async def list_requests(
    conn: Conn, patient_id: uuid.UUID | None, status: str
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {COLUMNS} FROM {FROM}
            WHERE ($1::uuid IS NULL OR r.patient_id = $1) AND ($2 = '' OR r.status = $2)
            ORDER BY r.requested_at DESC, r.chart_form_id DESC
            LIMIT 500""",
        patient_id,
        status,
    )


async def set_status(
    conn: Conn, refill_id: uuid.UUID, status: str, note: str, actor: str
) -> asyncpg.Record:
    """Record the decision or the withdrawal, and move the chart form along with it."""
    chart_status = "withdrawn" if status == "withdrawn" else "accepted"
    await conn.execute(
        """UPDATE refill_requests SET status = $2, decision_note = $3, decided_by = $4,
                  decided_at = clock_timestamp()
           WHERE chart_form_id = $1""",
        refill_id,
        status,
        note,
        actor if status != "withdrawn" else "",
    )
    reviewer = actor if status != "withdrawn" else ""
    await conn.execute(
        """UPDATE chart_forms SET status = $2, updated_at = now(),
                  reviewed_by = CASE WHEN $3 = '' THEN reviewed_by ELSE $3 END,
                  reviewed_at = CASE WHEN $3 = '' THEN reviewed_at ELSE clock_timestamp() END
           WHERE id = $1""",
        refill_id,
        chart_status,
        reviewer,
    )
    row = await get(conn, refill_id, patient_id=None)
    if row is None:
        raise LookupError(refill_id)
    return row
