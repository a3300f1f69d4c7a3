"""Scheduling's access log: every read or change of a patient's appointments."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from services.runtime.db import Conn
from services.runtime.principal import Principal


async def record(
    conn: Conn,
    principal: Principal,
    action: str,
    patient_ids: Iterable[uuid.UUID],
    appointment_id: uuid.UUID | None = None,
) -> None:
    """One row per patient (a calendar read touches several patients' appointments)."""
    distinct = sorted(set(patient_ids))
    if not distinct:
        return
    await conn.execute(
        """INSERT INTO access_log
               (actor_kind, actor_id, actor_name, patient_id, appointment_id, action,
                source_address)
           SELECT $1, $2, $3, p, $4, $5, $6 FROM unnest($7::uuid[]) AS p""",
        principal.kind,
        principal.subject,
        principal.name,
        appointment_id,
        action,
        principal.source,
        distinct,
    )
