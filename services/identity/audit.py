"""The append-only audit log: who did what to which patient's data, when, from where."""

from __future__ import annotations

import uuid

from services.runtime.db import Conn
from services.runtime.principal import Principal


async def record(
    conn: Conn,
    principal: Principal | None,
    action: str,
    *,
    patient_id: uuid.UUID | str | None = None,
    outcome: str = "ok",
    detail: str = "",
    actor_kind: str = "",
    actor_id: str = "",
    actor_name: str = "",
    source: str = "",
) -> None:
    """Append one entry; actor fields default to the principal's."""
    if principal is not None:
        actor_kind = actor_kind or principal.kind
        actor_id = actor_id or principal.subject
        actor_name = actor_name or principal.name
        source = source or principal.source
    await conn.execute(
        """INSERT INTO audit_log
               (actor_kind, actor_id, actor_name, patient_id, action, outcome,
                source_address, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        actor_kind or "anonymous",
        actor_id,
        actor_name,
        uuid.UUID(str(patient_id)) if patient_id else None,
        action,
        outcome,
        source,
        detail,
    )
