"""A patient's own record, read and audited in one statement (the portal's hottest path)."""

from __future__ import annotations

import uuid

import asyncpg

from services.identity import audit, patients
from services.runtime.db import Conn
from services.runtime.principal import Principal

ACTION = "patient.read_own"


async def read_own(
    conn: Conn, principal: Principal, patient_id: uuid.UUID
) -> asyncpg.Record | None:
    """The patient with their account of the principal's realm (column "account"), or None.

    The audit entry is written by the same statement, and only when the record goes back to
    the patient: not when there is none, nor while the account's password must change first.
    """
    entry = audit.Entry.for_principal(principal, ACTION, patient_id=patient_id)
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""WITH found AS (
                SELECT {patients.COLUMNS}, a AS account
                FROM patients p JOIN portal_accounts a ON a.patient_id = p.id AND a.realm = $9
                WHERE p.id = $4
            ), logged AS (
                INSERT INTO audit_log ({audit.INSERT_COLUMNS})
                SELECT $1::text, $2::text, $3::text, $4::uuid, $5::text, $6::text, $7::text,
                       $8::text
                FROM found WHERE NOT (found.account).must_change_password
            )
            SELECT * FROM found""",
        *entry.values(),
        principal.realm,
    )
    return row
