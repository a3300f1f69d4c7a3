"""The append-only audit log: who did what to which patient's data, when, from where."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypedDict, Unpack

import asyncpg

from services.runtime.db import Conn
from services.runtime.principal import Principal


@dataclass(frozen=True)
class Entry:
    """One audit row; `for_principal` fills the actor from the call's principal."""

    actor_kind: str
    actor_id: str
    actor_name: str
    patient_id: uuid.UUID | None
    action: str
    outcome: str
    source: str
    detail: str

    @classmethod
    def for_principal(
        cls,
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
    ) -> Entry:
        if principal is not None:
            actor_kind = actor_kind or principal.kind
            actor_id = actor_id or principal.subject
            actor_name = actor_name or principal.name
            source = source or principal.source
        return cls(
            actor_kind=actor_kind or "anonymous",
            actor_id=actor_id,
            actor_name=actor_name,
            patient_id=uuid.UUID(str(patient_id)) if patient_id else None,
            action=action,
            outcome=outcome,
            source=source,
            detail=detail,
        )

    def values(self) -> tuple[object, ...]:
        """In the column order of INSERT_COLUMNS."""
        return (
            self.actor_kind,
            self.actor_id,
            self.actor_name,
            self.patient_id,
            self.action,
            self.outcome,
            self.source,
            self.detail,
        )


INSERT_COLUMNS = (
    "actor_kind, actor_id, actor_name, patient_id, action, outcome, source_address, detail"
)


class Details(TypedDict, total=False):
    patient_id: uuid.UUID | str | None
    outcome: str
    detail: str
    actor_kind: str
    actor_id: str
    actor_name: str
    source: str


async def record(
    conn: Conn, principal: Principal | None, action: str, **details: Unpack[Details]
) -> None:
    """Append one entry; actor fields default to the principal's."""
    entry = Entry.for_principal(principal, action, **details)
    await conn.execute(
        f"INSERT INTO audit_log ({INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        *entry.values(),
    )


async def record_each(
    conn: Conn, principal: Principal | None, action: str, patient_ids: list[uuid.UUID]
) -> None:
    """One entry per patient (a batch read is as many reads as patients it shows)."""
    await conn.executemany(
        f"INSERT INTO audit_log ({INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [Entry.for_principal(principal, action, patient_id=p).values() for p in patient_ids],
    )


async def search(
    pool: asyncpg.Pool,
    *,
    patient_id: uuid.UUID | None,
    actor_id: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Newest first; each filter applies only when given."""
    rows: list[asyncpg.Record] = await pool.fetch(
        """SELECT id, at, actor_kind, actor_id, actor_name, patient_id, action, outcome,
                  source_address, detail
           FROM audit_log
           WHERE ($1::uuid IS NULL OR patient_id = $1)
             AND ($2::text IS NULL OR actor_id = $2)
             AND ($3::text IS NULL OR action = $3 OR action LIKE $3 || '.%')
             AND ($4::timestamptz IS NULL OR at >= $4)
             AND ($5::timestamptz IS NULL OR at < $5)
             AND ($6::bigint IS NULL OR id < $6)
           ORDER BY id DESC LIMIT $7""",
        patient_id,
        actor_id,
        action,
        since,
        until,
        before_id,
        limit,
    )
    return rows
