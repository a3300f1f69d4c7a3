"""Patient-proposed changes to their contact details, and the staff decision on them.

A patient proposes new values for some of FIELDS; staff accept (the proposed fields, and only
those, are written to the patient's record in the same transaction) or reject. A patient has
at most one pending proposal: proposing again marks the pending one "replaced" and starts a new
one, so the patient can correct a typo at once, and staff never accept values they did not see
(deciding a replaced proposal is refused). Proposals are identity's share of the staff work
queue (kind "profile_update").
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

import asyncpg

from portal.identity.v1 import identity_pb2 as pb
from services.identity import audit, convert, patients
from services.runtime import text
from services.runtime.db import Conn
from services.runtime.errors import FieldErrors
from services.runtime.principal import Principal

Field = Literal["address", "phone", "email", "preferred_contact"]
FIELDS: tuple[Field, ...] = ("address", "phone", "email", "preferred_contact")
LABELS = {
    "address": "address",
    "phone": "phone",
    "email": "e-mail",
    "preferred_contact": "preferred contact",
}
# The contract's ProfileUpdateStatus enum names the values (…_PENDING -> "pending").
STATUSES = tuple(
    v.name.removeprefix("PROFILE_UPDATE_STATUS_").lower()
    for v in pb.ProfileUpdateStatus.DESCRIPTOR.values
    if v.number
)
DECISIONS = {"accept": "accepted", "reject": "rejected"}
QUEUE_KIND = "profile_update"
NOTE_MAX = 1000

NOTHING_PROPOSED = "Change at least one of your contact details."
NO_CHANGE = "These are already your contact details: change at least one of them."
CONTACT_PREFERENCE = "Preferred contact must be e-mail, phone or mail."
DECISION = "Decision must be accept or reject."
NOTE_TOO_LONG = f"The note must be at most {NOTE_MAX} characters."


# --- Validation -----------------------------------------------------------------------------


def requested(details: pb.ContactDetails) -> dict[str, str]:
    """The fields present in the message (the ones the patient asks to change)."""
    return {name: getattr(details, name) for name in FIELDS if details.HasField(name)}


def clean(values: Mapping[str, str]) -> tuple[dict[str, str], FieldErrors]:
    """The values cleaned as demographics are (text rule, white space) and their problems."""
    errors: FieldErrors = {}
    cleaned: dict[str, str] = {}
    for name, value in values.items():
        try:
            cleaned[name] = text.clean(value, multiline=name == "address")
        except text.TextError as exc:
            errors[name] = [str(exc)]
    demographics = {name for name in cleaned if name in patients.DEMOGRAPHICS}
    tidy = patients.clean(patients.PatientInput(**{n: cleaned[n] for n in demographics}))
    cleaned.update({name: getattr(tidy, name) for name in demographics})
    errors.update(patients.validate(tidy, fields=demographics))
    if cleaned.get("preferred_contact", "") not in patients.CONTACT_PREFERENCES:
        errors["preferred_contact"] = [CONTACT_PREFERENCE]
    return cleaned, errors


def changes(cleaned: Mapping[str, str], patient: asyncpg.Record) -> dict[str, str]:
    """Only the values that differ from the patient's record."""
    return {name: value for name, value in cleaned.items() if value != patient[name]}


def clean_note(note: str) -> tuple[str, FieldErrors]:
    try:
        note = text.clean(note, multiline=True).strip()
    except text.TextError as exc:
        return "", {"note": [str(exc)]}
    return note, ({"note": [NOTE_TOO_LONG]} if len(note) > NOTE_MAX else {})


# --- Storage --------------------------------------------------------------------------------

_PROPOSED = ", ".join(f"u.proposed_{name}" for name in FIELDS)
_CURRENT = ", ".join(
    f"CASE WHEN u.status = 'pending' THEN p.{name} ELSE u.previous_{name} END AS current_{name}"
    for name in FIELDS
)
COLUMNS = f"""u.id, u.patient_id, u.status, {_PROPOSED}, u.decision_note, u.decided_by_name,
    u.created_at, u.decided_at"""
STAFF_COLUMNS = f"""{COLUMNS}, {_CURRENT}, p.chart_number, p.first_name, p.last_name"""


async def propose(
    conn: Conn, patient_id: uuid.UUID, values: Mapping[str, str]
) -> tuple[asyncpg.Record, uuid.UUID | None]:
    """Store a pending proposal, replacing the pending one: (the new row, the replaced id).

    The caller holds the patient's row lock, so two proposals at once queue up.
    """
    new_id = uuid.uuid4()
    replaced: uuid.UUID | None = await conn.fetchval(
        """UPDATE profile_updates SET status = 'replaced', decided_at = clock_timestamp()
           WHERE patient_id = $1 AND status = 'pending' RETURNING id""",
        patient_id,
    )
    row = await conn.fetchrow(
        f"""INSERT INTO profile_updates AS u (id, patient_id,
                {", ".join(f"proposed_{name}" for name in FIELDS)})
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}""",
        new_id,
        patient_id,
        *(values.get(name) for name in FIELDS),
    )
    if replaced is not None:
        await conn.execute(
            "UPDATE profile_updates SET replaced_by = $1 WHERE id = $2", new_id, replaced
        )
    if row is None:
        raise RuntimeError("INSERT … RETURNING gave no row")
    return row, replaced


async def of_patient(conn: Conn, patient_id: uuid.UUID, limit: int) -> list[asyncpg.Record]:
    """A patient's own proposals, newest first."""
    return await conn.fetch(
        f"""SELECT {COLUMNS} FROM profile_updates u WHERE u.patient_id = $1
            ORDER BY u.created_at DESC LIMIT $2""",
        patient_id,
        limit,
    )


async def for_staff(
    conn: Conn, *, status: str, patient_id: uuid.UUID | None, limit: int
) -> list[asyncpg.Record]:
    """With the patient's values beside the proposed ones; pending ones oldest first."""
    order = "u.created_at" if status == "pending" else "u.created_at DESC"
    return await conn.fetch(
        f"""SELECT {STAFF_COLUMNS} FROM profile_updates u JOIN patients p ON p.id = u.patient_id
            WHERE ($1 = '' OR u.status = $1) AND ($2::uuid IS NULL OR u.patient_id = $2)
            ORDER BY {order}, u.id LIMIT $3""",
        status,
        patient_id,
        limit,
    )


async def patient_of(conn: Conn, update_id: uuid.UUID) -> uuid.UUID | None:
    found: uuid.UUID | None = await conn.fetchval(
        "SELECT patient_id FROM profile_updates WHERE id = $1", update_id
    )
    return found


async def get_for_decision(conn: Conn, update_id: uuid.UUID) -> asyncpg.Record | None:
    """The proposal, its row locked, so the decision is taken once.

    Lock the patient's row first, as `propose` does, so the two never wait on each other.
    """
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM profile_updates u WHERE u.id = $1 FOR UPDATE", update_id
    )


async def decide(
    conn: Conn,
    update_id: uuid.UUID,
    status: str,
    note: str,
    principal: Principal,
    previous: Mapping[str, str],
) -> asyncpg.Record:
    """Record the decision and the values the proposed fields had at that moment."""
    row = await conn.fetchrow(
        f"""UPDATE profile_updates AS u SET status = $2, decision_note = $3, decided_by_id = $4,
                decided_by_name = $5, decided_at = clock_timestamp(),
                {", ".join(f"previous_{n} = ${i}" for i, n in enumerate(FIELDS, start=6))}
            WHERE u.id = $1 AND u.status = 'pending'
            RETURNING {COLUMNS}""",
        update_id,
        status,
        note,
        principal.subject,
        principal.name,
        *(previous.get(name) for name in FIELDS),
    )
    if row is None:
        raise RuntimeError("the proposal was not pending under its row lock")
    return row


async def queue(
    conn: Conn, *, status: str, limit: int, count_only: bool
) -> tuple[list[asyncpg.Record], int]:
    """Proposals for the work queue, newest first, and how many match in all.

    Replaced proposals never waited for staff, so only an explicit status filter shows them.
    """
    where = "CASE WHEN $1 = '' THEN u.status <> 'replaced' ELSE u.status = $1 END"
    total: int = await conn.fetchval(
        f"SELECT count(*) FROM profile_updates u WHERE {where}", status
    )
    if count_only or total == 0:
        return [], total
    rows = await conn.fetch(
        f"""SELECT {COLUMNS}, p.first_name, p.last_name
            FROM profile_updates u JOIN patients p ON p.id = u.patient_id
            WHERE {where} ORDER BY u.created_at DESC, u.id LIMIT $2""",
        status,
        limit,
    )
    return rows, total


async def audit_reads(
    conn: Conn, principal: Principal, action: str, patient_ids: Iterable[uuid.UUID]
) -> None:
    """One audit entry per patient whose data a list showed, in one statement."""
    distinct = list(dict.fromkeys(patient_ids))
    if not distinct:
        return
    entry = audit.Entry.for_principal(principal, action)
    await conn.execute(
        f"""INSERT INTO audit_log ({audit.INSERT_COLUMNS})
            SELECT $1, $2, $3, patient_id, $5, $6, $7, $8
            FROM unnest($4::uuid[]) AS patient_id""",
        *entry.values()[:3],
        distinct,
        *entry.values()[4:],
    )


# --- Messages -------------------------------------------------------------------------------


def proposed_fields(row: asyncpg.Record) -> list[str]:
    return [name for name in FIELDS if row[f"proposed_{name}"] is not None]


def details(row: asyncpg.Record, prefix: str, fields: Iterable[str]) -> pb.ContactDetails:
    message = pb.ContactDetails()
    for name in fields:
        value = row[f"{prefix}{name}"]
        if value is not None:
            setattr(message, name, value)
    return message


def message(row: asyncpg.Record, *, staff: bool = False) -> pb.ProfileUpdate:
    fields = proposed_fields(row)
    update = pb.ProfileUpdate(
        id=str(row["id"]),
        patient_id=str(row["patient_id"]),
        status=row["status"],
        proposed=details(row, "proposed_", fields),
        decision_note=row["decision_note"],
        created_at=convert.timestamp(row["created_at"]),
        decided_at=convert.timestamp(row["decided_at"]),
    )
    if staff:
        update.current.CopyFrom(details(row, "current_", fields))
        update.chart_number = row["chart_number"]
        update.patient_name = f"{row['first_name']} {row['last_name']}"
        update.decided_by = row["decided_by_name"]
    return update


def summary(row: asyncpg.Record) -> str:
    """What a work queue line says: the patient's name and which fields, never the values."""
    asked = ", ".join(LABELS[name] for name in proposed_fields(row))
    return f"{row['first_name']} {row['last_name']} asks to change: {asked}"


def queue_item(row: asyncpg.Record) -> pb.WorkQueueItem:
    created: datetime = row["created_at"]
    return pb.WorkQueueItem(
        kind=QUEUE_KIND,
        id=str(row["id"]),
        patient_id=str(row["patient_id"]),
        summary=summary(row),
        created_at=convert.timestamp(created),
        status=row["status"],
    )
