"""Patient-data access audit: every read and change of a patient's forms is appended here."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from services.runtime.db import Conn
from services.runtime.principal import Principal


async def record(
    conn: Conn,
    principal: Principal,
    action: str,
    patient_id: uuid.UUID | None,
    *,
    chart_form_id: uuid.UUID | None = None,
    document_id: uuid.UUID | None = None,
    user_agent: str = "",
    detail: str = "",
) -> None:
    await conn.execute(
        """INSERT INTO access_log (actor_kind, actor_id, patient_id, action, source_address,
                                   chart_form_id, user_agent, detail, document_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        principal.kind,
        actor(principal),
        patient_id,
        action,
        principal.source,
        chart_form_id,
        user_agent[:512],
        detail,
        document_id,
    )


@dataclass(frozen=True)
class Entry:
    """Who did what, for a statement that appends its access-log row itself, with the read or
    change it logs (the statement supplies the patient and chart form)."""

    actor_kind: str
    actor_id: str
    action: str
    source_address: str


def entry(principal: Principal, action: str) -> Entry:
    return Entry(principal.kind, actor(principal), action, principal.source)


def actor(principal: Principal) -> str:
    """Who, as the audit trail records it: a staff member's name with their id (two people may
    share a name), else the principal's subject."""
    if principal.kind == "staff" and principal.name:
        return f"{principal.name} ({principal.subject})"
    return principal.subject


NAMED_ACTOR = re.compile(r"(.+) \([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)")


def name_of(recorded: str) -> str:
    """A recorded actor as people read it: a staff member's name without the id that actor()
    keeps beside it (the access log keeps both); anything else as it is."""
    found = NAMED_ACTOR.fullmatch(recorded)
    return found[1] if found else recorded


async def record_system(
    conn: Conn, action: str, patient_id: uuid.UUID, chart_form_id: uuid.UUID, detail: str = ""
) -> None:
    """A change made by an event handler (no principal): the service itself is the actor."""
    await conn.execute(
        """INSERT INTO access_log (actor_kind, actor_id, patient_id, action, chart_form_id, detail)
           VALUES ('service', 'forms', $1, $2, $3, $4)""",
        patient_id,
        action,
        chart_form_id,
        detail,
    )
