"""The chart's current medications, kept by staff (a patient reads their own current ones)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from services.forms import fields
from services.forms.fields import Field
from services.runtime.db import Conn

MAX_NAME = 200
MAX_DOSE = 200
MAX_INSTRUCTIONS = 2000


@dataclass(frozen=True)
class New:
    name: str
    dose: str
    instructions: str


def validate(name: str, dose: str, instructions: str) -> tuple[New, dict[str, list[str]]]:
    values, errors = fields.check(
        [
            Field("name", name, MAX_NAME),
            Field("dose", dose, MAX_DOSE),
            Field("instructions", instructions, MAX_INSTRUCTIONS, multiline=True),
        ]
    )
    if not values.get("name") and "name" not in errors:
        errors["name"] = ["Name the medication."]
    return New(
        values.get("name", ""), values.get("dose", ""), values.get("instructions", "")
    ), errors


async def list_for_patient(
    conn: Conn, patient_id: uuid.UUID, *, include_discontinued: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM medications
           WHERE patient_id = $1 AND ($2 OR discontinued_at IS NULL)
           ORDER BY discontinued_at IS NOT NULL, lower(name), added_at, id""",
        patient_id,
        include_discontinued,
    )


async def add(conn: Conn, patient_id: uuid.UUID, new: New, actor: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        """INSERT INTO medications (patient_id, name, dose, instructions, added_by)
           VALUES ($1, $2, $3, $4, $5) RETURNING *""",
        patient_id,
        new.name,
        new.dose,
        new.instructions,
        actor,
    )
    if row is None:
        raise LookupError("insert returned no row")
    return row


async def get(
    conn: Conn, medication_id: uuid.UUID, *, patient_id: uuid.UUID | None = None
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM medications WHERE id = $1 AND ($2::uuid IS NULL OR patient_id = $2)",
        medication_id,
        patient_id,
    )


async def discontinue(conn: Conn, medication_id: uuid.UUID, actor: str) -> asyncpg.Record | None:
    """The medication, discontinued now unless it already was; None when there is none."""
    row = await conn.fetchrow(
        """UPDATE medications SET discontinued_at = clock_timestamp(), discontinued_by = $2
           WHERE id = $1 AND discontinued_at IS NULL RETURNING *""",
        medication_id,
        actor,
    )
    return row if row is not None else await get(conn, medication_id)
