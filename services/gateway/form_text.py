"""The text rule (services.runtime.text) for the staff and patient HTML forms, in one place.

Every page handler that reads a posted form reads it here: each text value is NFC-normalised,
and one holding control characters (newline and tab are fine in FREE_TEXT_FIELDS) or lone
surrogates becomes a field message, so the page re-renders with a 400 beside that field
instead of sending the text on. Passwords follow the same rule but are never echoed back.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

from aiohttp import web

from services.runtime.errors import FieldErrors
from services.runtime.text import FREE_TEXT_FIELDS, TextError, clean, problem

CHECK_FORM = "Please check what you entered."


class Posted(NamedTuple):
    """The form's text values (cleaned) and the rule's messages by field name."""

    values: dict[str, str]
    errors: FieldErrors


def is_secret(name: str) -> bool:
    """Passwords: checked like any text, never shown again."""
    return "password" in name


async def read(request: web.Request, *, strip: bool = True) -> Posted:
    """The posted form's text fields (files are ignored; of a repeated name the last counts).

    With `strip`, surrounding whitespace goes from every value. A refused value is echoed
    without the characters the rule refuses (a password: not at all).
    """
    values: dict[str, str] = {}
    errors: FieldErrors = {}
    for name, raw in (await request.post()).items():
        if not isinstance(raw, str):
            continue
        multiline = name in FREE_TEXT_FIELDS
        try:
            value = clean(raw, multiline=multiline)
        except TextError as exc:
            errors[name] = [str(exc)]
            value = "" if is_secret(name) else _scrub(raw, multiline)
        values[name] = value.strip() if strip else value
    return Posted(values, errors)


def _scrub(value: str, multiline: bool) -> str:
    """`value` without the characters the rule refuses, for showing it again."""
    kept = "".join(ch for ch in value if problem(ch, multiline=multiline) is None)
    return unicodedata.normalize("NFC", kept)
