"""Letter templates and their merge fields: {patient_name}, {date}, {clinic_name}.

The merge is a tiny parser, not str.format: only these three names are recognised, values are
inserted as they are and never read again, so a patient named "{clinic_name}" or "{0.__class__}"
prints exactly that. "{{" and "}}" write a literal brace. A template naming any other field, or
holding a lone brace, is refused when it is saved.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import asyncpg

from services.forms import fields
from services.forms.fields import Field
from services.runtime.db import Conn

FIELDS = ("patient_name", "date", "clinic_name")
MAX_NAME = 120
MAX_TITLE = 200
MAX_BODY = 20_000
# One token: an escaped brace, a merge field, or a lone brace (an error).
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
FIELD_LIST = ", ".join("{" + name + "}" for name in FIELDS)


class MergeError(ValueError):
    """The text is not a valid template; the message is fit to show beside the field."""


@dataclass(frozen=True)
class Merge:
    patient_name: str
    date: str
    clinic_name: str

    def value(self, name: str) -> str:
        return {
            "patient_name": self.patient_name,
            "date": self.date,
            "clinic_name": self.clinic_name,
        }[name]


def check(text: str) -> None:
    """MergeError naming the first unknown field or lone brace in `text`."""
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise MergeError(f"A lone brace: write {{{{ or }}}} for a brace, or use {FIELD_LIST}.")
        if name not in FIELDS:
            raise MergeError(f"Unknown merge field {{{name}}}: use {FIELD_LIST}.")


def merge(text: str, values: Merge) -> str:
    """`text` with its merge fields filled in (check it first: unknown fields stay as typed)."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        return values.value(name) if name in FIELDS else token

    return _TOKEN.sub(replace, text)


@dataclass(frozen=True)
class Draft:
    name: str
    title: str
    body: str


def validate(name: str, title: str, body: str) -> tuple[Draft, dict[str, list[str]]]:
    values, errors = fields.check(
        [
            Field("name", name, MAX_NAME),
            Field("title", title or name, MAX_TITLE),
            Field("body", body, MAX_BODY, multiline=True),
        ]
    )
    for field in ("name", "title", "body"):
        if not values.get(field) and field not in errors:
            errors[field] = ["Required."]
    for field in ("title", "body"):
        try:
            check(values.get(field, ""))
        except MergeError as exc:
            errors.setdefault(field, []).append(str(exc))
    return Draft(values.get("name", ""), values.get("title", ""), values.get("body", "")), errors


async def list_all(conn: Conn) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT * FROM letter_templates ORDER BY lower(name), id")


async def get(conn: Conn, template_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM letter_templates WHERE id = $1", template_id)


async def create(conn: Conn, draft: Draft, actor: str) -> asyncpg.Record | None:
    """The new template, or None when one of that name exists."""
    return await conn.fetchrow(
        """INSERT INTO letter_templates (name, title, body, created_by) VALUES ($1, $2, $3, $4)
           ON CONFLICT (name) DO NOTHING RETURNING *""",
        draft.name,
        draft.title,
        draft.body,
        actor,
    )
