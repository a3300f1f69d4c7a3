"""Text fields of a request, checked in one pass: the text rule, length limits, tidy spaces."""

from __future__ import annotations

from typing import NamedTuple

from services.runtime.text import TextError, clean


class Field(NamedTuple):
    name: str
    raw: str
    limit: int
    multiline: bool = False  # keeps line breaks; one-line values get single spaces


def check(fields: list[Field]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Cleaned values by name (refused ones left out) and the messages by field name."""
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for field in fields:
        try:
            text = clean(field.raw, multiline=field.multiline).strip()
        except TextError as exc:
            errors[field.name] = [str(exc)]
            continue
        if len(text) > field.limit:
            errors[field.name] = [f"Must be at most {field.limit} characters."]
        values[field.name] = text if field.multiline else " ".join(text.split())
    return values, errors
