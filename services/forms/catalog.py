"""The form library in the database: forms, their versions, the portal catalog, visit forms.

A version is editable until answers point at it (published_at); editing a published version
adds the next one, and chart forms nobody has started yet move to it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

import asyncpg

from services.forms.definitions import Definition, items_from_json
from services.runtime.db import Conn

# pg_advisory_xact_lock key: placing consent forms (on access granted / on catalog update)
# and changing the catalog take it, so neither misses the other's change.
PLACEMENT_LOCK = 0x706F7274616C6663

FORM_COLUMNS = """f.id, f.kind, f.library_key, f.updated_at, v.version, v.title, v.description,
                  v.items, v.published_at, p.position"""
FORM_FROM = """forms f
               JOIN form_versions v ON v.form_id = f.id
               LEFT JOIN portal_forms p ON p.form_id = f.id"""


def definition(row: asyncpg.Record) -> Definition:
    return Definition(
        title=row["title"],
        kind=row["kind"],
        description=row["description"],
        items=items_from_json(json.loads(row["items"])),
    )


async def list_forms(conn: Conn, kind: str = "") -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {FORM_COLUMNS} FROM {FORM_FROM}
            WHERE v.version = f.current_version AND ($1 = '' OR f.kind = $1)
            ORDER BY p.position NULLS LAST, lower(v.title), f.id""",
        kind,
    )


async def get_form(conn: Conn, form_id: uuid.UUID, version: int = 0) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {FORM_COLUMNS} FROM {FORM_FROM}
            WHERE f.id = $1 AND v.version = CASE WHEN $2 = 0 THEN f.current_version ELSE $2 END""",
        form_id,
        version,
    )


async def create_form(conn: Conn, d: Definition, actor: str) -> uuid.UUID:
    async with conn.transaction():
        form_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO forms (kind) VALUES ($1) RETURNING id", d.kind
        )
        await _insert_version(conn, form_id, 1, d, actor)
    return form_id


async def _insert_version(
    conn: Conn, form_id: uuid.UUID, version: int, d: Definition, actor: str
) -> None:
    await conn.execute(
        """INSERT INTO form_versions (form_id, version, title, description, items, created_by)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6)""",
        form_id,
        version,
        d.title,
        d.description,
        json.dumps(d.items_json()),
        actor,
    )


async def update_form(conn: Conn, form_id: uuid.UUID, d: Definition, actor: str) -> int:
    """Store the new definition; return the version that holds it (the caller's transaction)."""
    current = await conn.fetchrow(
        """SELECT v.version, v.published_at FROM forms f
           JOIN form_versions v ON v.form_id = f.id AND v.version = f.current_version
           WHERE f.id = $1 FOR UPDATE OF f, v""",
        form_id,
    )
    if current is None:
        raise LookupError(form_id)
    version: int = current["version"]
    if current["published_at"] is None:
        await conn.execute(
            """UPDATE form_versions SET title = $3, description = $4, items = $5::jsonb
               WHERE form_id = $1 AND version = $2""",
            form_id,
            version,
            d.title,
            d.description,
            json.dumps(d.items_json()),
        )
    else:
        version += 1
        await _insert_version(conn, form_id, version, d, actor)
        # Nobody has answered these yet: they may as well show the newest version.
        await conn.execute(
            """UPDATE chart_forms SET form_version = $2, updated_at = now()
               WHERE form_id = $1 AND status = 'not-started' AND answers = '{}'::jsonb""",
            form_id,
            version,
        )
    await conn.execute(
        "UPDATE forms SET current_version = $2, updated_at = now() WHERE id = $1", form_id, version
    )
    return version


async def publish(conn: Conn, form_id: uuid.UUID, version: int) -> None:
    """Freeze a version: answers now point at it (the row lock orders it after any edit)."""
    await conn.execute(
        """UPDATE form_versions SET published_at = now()
           WHERE form_id = $1 AND version = $2 AND published_at IS NULL""",
        form_id,
        version,
    )


async def existing(conn: Conn, form_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """form id -> kind, for those of `form_ids` that exist."""
    rows = await conn.fetch("SELECT id, kind FROM forms WHERE id = ANY($1::uuid[])", form_ids)
    return {r["id"]: r["kind"] for r in rows}


async def set_portal_forms(conn: Conn, form_ids: Sequence[uuid.UUID]) -> None:
    """Exactly these forms, in this order (the caller's transaction holds PLACEMENT_LOCK)."""
    await conn.execute("DELETE FROM portal_forms")
    await conn.executemany(
        "INSERT INTO portal_forms (form_id, position) VALUES ($1, $2)",
        [(form_id, n) for n, form_id in enumerate(form_ids, start=1)],
    )


async def lock_placement(conn: Conn) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", PLACEMENT_LOCK)


async def place_portal_consents(
    conn: Conn, patient_id: uuid.UUID | None = None
) -> list[asyncpg.Record]:
    """Place every portal consent form in the charts with portal access (or in one), once.

    The caller's transaction holds PLACEMENT_LOCK. Returns the chart forms it created.
    """
    return await conn.fetch(
        """INSERT INTO chart_forms (patient_id, form_id, form_version, origin, assigned_by)
           SELECT c.patient_id, f.id, f.current_version, 'portal', 'portal'
           FROM charts c
           CROSS JOIN forms f
           JOIN portal_forms p ON p.form_id = f.id
           WHERE f.kind = 'consent' AND c.portal_access
             AND ($1::uuid IS NULL OR c.patient_id = $1)
           ORDER BY c.patient_id, p.position
           ON CONFLICT (patient_id, form_id) WHERE origin = 'portal' DO NOTHING
           RETURNING *""",
        patient_id,
    )


async def visit_forms(conn: Conn, appointment_type_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {FORM_COLUMNS} FROM {FORM_FROM}
            JOIN visit_forms vf ON vf.form_id = f.id
            WHERE vf.appointment_type_id = $1 AND v.version = f.current_version
            ORDER BY vf.position""",
        appointment_type_id,
    )


async def set_visit_forms(
    conn: Conn, appointment_type_id: uuid.UUID, form_ids: Sequence[uuid.UUID]
) -> None:
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM visit_forms WHERE appointment_type_id = $1", appointment_type_id
        )
        await conn.executemany(
            "INSERT INTO visit_forms (appointment_type_id, form_id, position) VALUES ($1, $2, $3)",
            [(appointment_type_id, form_id, n) for n, form_id in enumerate(form_ids, start=1)],
        )
