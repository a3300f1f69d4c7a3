"""The patient registry: validation, storage and search."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date

import asyncpg

from portal.identity.v1 import identity_pb2 as pb
from services.runtime.db import Conn
from services.runtime.errors import FieldErrors

# The contract's Sex enum names the values (SEX_FEMALE -> "female").
SEXES = tuple(v.name.removeprefix("SEX_").lower() for v in pb.Sex.DESCRIPTOR.values if v.number)
CONTACT_PREFERENCES = ("", "email", "phone", "mail")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9 ()\-.]{7,20}$")
_DATE_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_US = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_DIGITS = re.compile(r"^\d{1,12}$")
_WORD = re.compile(r"[^\W\d_]+")


@dataclass
class PatientInput:
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    date_of_birth: str = ""
    sex: str = ""
    email: str = ""
    phone: str = ""
    address: str = ""


def clean(values: PatientInput) -> PatientInput:
    """Collapse runs of white space; an address keeps its line breaks."""
    cleaned = {k: " ".join(str(v).split()) for k, v in vars(values).items()}
    cleaned["address"] = "\n".join(
        " ".join(line.split()) for line in values.address.splitlines() if line.strip()
    )
    return PatientInput(**cleaned)


def validate(values: PatientInput, *, fields: set[str] | None = None) -> FieldErrors:
    """Field messages for what is wrong (only `fields` when given); empty when all is well."""
    errors: FieldErrors = {}

    def check(name: str, ok: bool, message: str) -> None:
        if (fields is None or name in fields) and not ok:
            errors.setdefault(name, []).append(message)

    for name, label in (("first_name", "First name"), ("last_name", "Last name")):
        value = getattr(values, name)
        check(name, bool(value), f"{label} is required.")
        check(name, len(value) <= 100, f"{label} must be at most 100 characters.")
    check("middle_name", len(values.middle_name) <= 100, "Middle name is too long.")
    dob = parse_date(values.date_of_birth)
    check("date_of_birth", dob is not None, "Date of birth must be a date like 1980-04-23.")
    if dob is not None:
        check(
            "date_of_birth",
            date(1900, 1, 1) <= dob <= date.today(),
            "Date of birth must be between 1900 and today.",
        )
    check("sex", values.sex in SEXES, f"Sex must be {', '.join(SEXES[:-1])} or {SEXES[-1]}.")
    check(
        "email",
        not values.email or bool(_EMAIL.match(values.email)),
        "E-mail address is not valid.",
    )
    check(
        "phone", not values.phone or bool(_PHONE.match(values.phone)), "Phone number is not valid."
    )
    check("address", len(values.address) <= 300, "Address must be at most 300 characters.")
    return errors


def parse_date(text: str) -> date | None:
    text = text.strip()
    try:
        if _DATE_ISO.match(text):
            return date.fromisoformat(text)
        us = _DATE_US.match(text)
        if us:
            return date(int(us[3]), int(us[1]), int(us[2]))
    except ValueError:
        return None
    return None


COLUMNS = """p.id, p.chart_number, p.first_name, p.middle_name, p.last_name, p.date_of_birth,
    p.sex, p.email, p.phone, p.address, p.allow_patient_portal, p.preferred_contact,
    p.allow_email, p.allow_sms, p.allow_voice, p.created_at"""


async def insert(conn: Conn, values: PatientInput) -> asyncpg.Record:
    dob = parse_date(values.date_of_birth)
    row = await conn.fetchrow(
        f"""INSERT INTO patients AS p (id, first_name, middle_name, last_name, date_of_birth, sex,
                                   email, phone, address)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}""",
        uuid.uuid4(),
        values.first_name,
        values.middle_name,
        values.last_name,
        dob,
        values.sex,
        values.email,
        values.phone,
        values.address,
    )
    assert row is not None
    return row


DEMOGRAPHICS = frozenset(field.name for field in pb.PatientFields.DESCRIPTOR.fields)
CHOICES = frozenset(
    ["allow_patient_portal", "preferred_contact", "allow_email", "allow_sms", "allow_voice"]
)
UPDATABLE = DEMOGRAPHICS | CHOICES


async def update(conn: Conn, patient_id: uuid.UUID, changes: dict[str, object]) -> asyncpg.Record:
    """Set the given columns (names checked against UPDATABLE) and return the row."""
    names = sorted(changes)
    assert set(names) <= UPDATABLE
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"""UPDATE patients AS p SET {assignments}, updated_at = now() WHERE p.id = $1
            RETURNING {COLUMNS}""",
        patient_id,
        *(changes[name] for name in names),
    )
    assert row is not None
    return row


async def same_person(conn: Conn, values: PatientInput, limit: int = 20) -> list[asyncpg.Record]:
    """Patients who are likely the same person: same first and last name and date of birth."""
    return await conn.fetch(
        f"""SELECT {COLUMNS} FROM patients p WHERE lower(p.first_name) = lower($1)
            AND lower(p.last_name) = lower($2) AND p.date_of_birth = $3
            ORDER BY p.created_at LIMIT $4""",
        values.first_name,
        values.last_name,
        parse_date(values.date_of_birth),
        limit,
    )


async def get(conn: Conn, patient_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record | None:
    suffix = " FOR UPDATE" if lock else ""
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM patients p WHERE p.id = $1{suffix}", patient_id
    )


async def get_many(conn: Conn, patient_ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        f"SELECT {COLUMNS} FROM patients p WHERE p.id = ANY($1::uuid[])", patient_ids
    )
    return rows


async def search(conn: Conn, query: str, limit: int) -> list[asyncpg.Record]:
    """By date of birth, chart number or id when the query is one; else typo-tolerant by name."""
    query = " ".join(query.split()).lower()
    if not query:
        return await conn.fetch(
            f"SELECT {COLUMNS} FROM patients p ORDER BY p.created_at DESC LIMIT $1", limit
        )
    dob = parse_date(query)
    if dob is not None:
        return await conn.fetch(
            f"""SELECT {COLUMNS} FROM patients p WHERE p.date_of_birth = $1
                ORDER BY p.last_name, p.first_name LIMIT $2""",
            dob,
            limit,
        )
    if _DIGITS.match(query):
        return await conn.fetch(
            f"SELECT {COLUMNS} FROM patients p WHERE p.chart_number = $1 LIMIT $2", query, limit
        )
    try:
        patient_id = uuid.UUID(query)
    except ValueError:
        pass
    else:
        return await conn.fetch(f"SELECT {COLUMNS} FROM patients p WHERE p.id = $1", patient_id)
    words = name_words(query)
    if not words:
        return []
    return await conn.fetch(NAME_SEARCH, words, limit)


def name_words(text: str) -> list[str]:
    """The words of a name as the database splits them (letters only, lower case)."""
    return _WORD.findall(text.lower())[:6]


# Each query word picks its closest name terms (exact 2.0 > prefix 1.5 > trigram similarity);
# a patient must match every word; the best total comes first, then by name.
NAME_SEARCH = f"""
WITH words AS MATERIALIZED (
    SELECT word, ord FROM unnest($1::text[]) WITH ORDINALITY AS w(word, ord)
),
terms AS MATERIALIZED (
    SELECT words.ord, t.term, t.score
    FROM words CROSS JOIN LATERAL (
        SELECT term, score FROM (
            SELECT term, score, max(score) OVER () AS best FROM (
                SELECT term,
                       CASE WHEN term = words.word THEN 2.0
                            WHEN term LIKE words.word || '%' THEN 1.5
                            ELSE similarity(term, words.word) END AS score
                FROM name_terms
                WHERE term % words.word OR term LIKE words.word || '%'
            ) AS scored
        ) AS ranked
        -- An exact or prefix match keeps near-misses out; a typo keeps its closest terms.
        WHERE score >= best - 0.5
        ORDER BY score DESC, term
        LIMIT 6
    ) AS t
),
hits AS (
    SELECT pt.patient_id, pt.sort_name, terms.ord, max(terms.score) AS score
    FROM terms JOIN patient_name_terms pt ON pt.term = terms.term
    GROUP BY pt.patient_id, pt.sort_name, terms.ord
),
best AS MATERIALIZED (
    SELECT patient_id, sort_name, sum(score) AS rank
    FROM hits
    GROUP BY patient_id, sort_name
    HAVING count(*) = (SELECT count(*) FROM words)
    ORDER BY rank DESC, sort_name
    LIMIT $2
)
SELECT {COLUMNS} FROM best JOIN patients p ON p.id = best.patient_id
ORDER BY best.rank DESC, best.sort_name
"""
