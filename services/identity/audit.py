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


@dataclass(frozen=True)
class Filters:
    """Each applies only when given. `patient`: a chart number, or words each starting one of
    the patient's names; `staff_username`: the events by that staff user."""

    patient_id: uuid.UUID | None = None
    patient: str | None = None
    actor_id: str | None = None
    staff_username: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None


def name_prefixes(text: str) -> list[str]:
    """The words of a name query as LIKE prefixes (wildcards in them escaped)."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return [w + "%" for w in escaped.replace(",", " ").split()]


async def search(pool: asyncpg.Pool, filters: Filters, *, limit: int) -> list[asyncpg.Record]:
    """Newest first, with the patient's name and chart number when the event names one."""
    f = filters
    rows: list[asyncpg.Record] = await pool.fetch(
        """SELECT a.id, a.at, a.actor_kind, a.actor_id, a.actor_name, a.patient_id, a.action,
                  a.outcome, a.source_address, a.detail,
                  coalesce(p.last_name || ', ' || p.first_name, '') AS patient_name,
                  coalesce(p.chart_number, '') AS chart_number
           FROM audit_log a LEFT JOIN patients p ON p.id = a.patient_id
           WHERE ($1::uuid IS NULL OR a.patient_id = $1)
             AND ($2::text IS NULL OR a.actor_id = $2)
             AND ($3::text IS NULL OR a.action = $3 OR a.action LIKE $3 || '.%')
             AND ($4::timestamptz IS NULL OR a.at >= $4)
             AND ($5::timestamptz IS NULL OR a.at < $5)
             AND ($6::bigint IS NULL OR a.id < $6)
             AND ($8::text IS NULL OR a.patient_id IN (
                   SELECT q.id FROM patients q
                   WHERE q.chart_number = $8
                      OR (cardinality($9::text[]) > 0 AND NOT EXISTS (
                            SELECT 1 FROM unnest($9::text[]) AS w
                            WHERE NOT (lower(q.first_name) LIKE w OR lower(q.last_name) LIKE w
                                       OR lower(q.middle_name) LIKE w)))))
             AND ($10::text IS NULL OR (a.actor_kind = 'staff' AND a.actor_id IN (
                   SELECT s.id::text FROM staff_users s WHERE lower(s.username) = lower($10))))
           ORDER BY a.id DESC LIMIT $7""",
        f.patient_id,
        f.actor_id,
        f.action,
        f.since,
        f.until,
        f.before_id,
        limit,
        f.patient,
        name_prefixes(f.patient or ""),
        f.staff_username,
    )
    return rows
