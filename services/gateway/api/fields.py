"""The API's field types, defined once: what each accepts is both checked and documented here.

Every string a client sends passes the shared text rule (services/runtime/text.py): NFC, no
control characters (free text may hold newlines and tabs), no lone surrogates. The JSON Schema
`pattern` of each type says the same thing in the document, and the checks here use the very same
regular expressions (Python's `re`, as the fuzzer does), so document and behaviour cannot drift.
Lone surrogates are refused too; no pattern names them, as they are not Unicode characters at
all (a JSON string holding one is not Unicode text).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from annotated_types import GroupedMetadata
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from services.runtime.text import TextError, clean

# Characters the text rule refuses, as a regular-expression class body.
_REFUSED = "\\u0000-\\u001f\\u007f-\\u009f"
_REFUSED_FREE = "\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f"
LINE_PATTERN = f"^[^{_REFUSED}]*$"
# Free text: newline and tab are fine, and so is CRLF (a browser's line break).
FREE_TEXT_PATTERN = f"^(?:[^{_REFUSED_FREE}]|\\r\\n)*$"
# Required text: at least one character that is not white space.
REQUIRED_PATTERN = f"^[^{_REFUSED}]*[^\\s{_REFUSED}][^{_REFUSED}]*$"
_EMAIL_PART = f"[^@\\s{_REFUSED}]"
EMAIL_PATTERN = f"^(?:{_EMAIL_PART}{{1,64}}@{_EMAIL_PART}+\\.{_EMAIL_PART}{{2,}})?$"
# 7 to 20 digits, spaces, ( ) - . after an optional +; single spaces between groups only.
PHONE_PATTERN = "^(?:\\+?(?=[0-9 ()\\-.]{7,20}$)[0-9()\\-.]+(?: [0-9()\\-.]+)*)?$"
DATE_PATTERN = "^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{1,2}/[0-9]{1,2}/[0-9]{4})$"
_US_DATE = re.compile(r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})$")
EARLIEST_BIRTH = date(1900, 1, 1)
# The document replaces this type's pattern with the exact one of the day (dates.py).
BIRTH_DATE = "birth-date"


def _checker(
    max_length: int, pattern: str, message: str, *, multiline: bool = False
) -> Callable[[str], str]:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        try:
            value = clean(value, multiline=multiline)
        except TextError as exc:
            raise ValueError(str(exc)) from None
        if len(value) > max_length:
            raise ValueError(f"Must be at most {max_length} characters.")
        if not compiled.match(value):
            raise ValueError(message)
        return value

    return check


@dataclass(frozen=True)
class Text(GroupedMetadata):
    """The rules of a string field: the text rule, at most `max_length` characters, `pattern`.

    Use as `Annotated[str, Text(100)]`; `required` means at least one non-space character.
    """

    max_length: int
    multiline: bool = False
    required: bool = False
    pattern: str = ""
    message: str = ""
    description: str = ""
    format: str = ""

    def __iter__(self) -> Iterator[object]:
        pattern, message = self.pattern, self.message
        if not pattern:
            if self.required:
                pattern, message = REQUIRED_PATTERN, "Must not be empty."
            else:
                pattern = FREE_TEXT_PATTERN if self.multiline else LINE_PATTERN
        extra: dict[str, Any] = {"pattern": pattern}
        if self.format:
            extra["format"] = self.format
        yield StringConstraints(max_length=self.max_length, min_length=1 if self.required else None)
        yield AfterValidator(_checker(self.max_length, pattern, message, multiline=self.multiline))
        yield Field(description=self.description or None, json_schema_extra=extra)


def _birth_date(value: str) -> str:
    """A real date from 1900-01-01 to today, as YYYY-MM-DD (M/D/YYYY is accepted too)."""
    us = _US_DATE.match(value)
    try:
        parsed = (
            date(int(us[3]), int(us[1]), int(us[2])) if us else date.fromisoformat(value.strip())
        )
    except ValueError:
        raise ValueError("Must be a real date like 1980-04-23.") from None
    if not EARLIEST_BIRTH <= parsed <= date.today():
        raise ValueError("Must be a date from 1900-01-01 to today.")
    return value


BirthDate = Annotated[
    str,
    Text(
        10,
        pattern=DATE_PATTERN,
        message="Must be a date like 1980-04-23 (or 04/23/1980).",
        description="A real calendar date from 1900-01-01 to today: YYYY-MM-DD, or M/D/YYYY.",
        format=BIRTH_DATE,
    ),
    AfterValidator(_birth_date),
]
Name = Annotated[str, Text(100, required=True)]
OptionalName = Annotated[str, Text(100)]
Email = Annotated[
    str,
    Text(254, pattern=EMAIL_PATTERN, message="Must be an e-mail address like name@example.org."),
]
Phone = Annotated[
    str, Text(20, pattern=PHONE_PATTERN, message="Must be a phone number like +1 555-0100.")
]
Address = Annotated[
    str, Text(300, multiline=True, description="Free text; lines separated by newlines.")
]


def _digits(value: object) -> object:
    # Query values are text: only plain decimal digits become a number ("", "5.0", "1_0" do not).
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


@dataclass(frozen=True)
class QueryInt(GroupedMetadata):
    """A whole number in a query string, from `low` to `high`: Annotated[int, QueryInt(1, 100)]."""

    low: int
    high: int

    def __iter__(self) -> Iterator[object]:
        yield Field(strict=True, ge=self.low, le=self.high)
        yield BeforeValidator(_digits)


def format_of(name: str) -> Any:
    """Annotated metadata naming a JSON Schema `format` (uuid, date-time, ...)."""
    return Field(json_schema_extra={"format": name})
