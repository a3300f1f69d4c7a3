"""Answers: each checked against its item's type; completeness checked on submit.

Answers are a JSON object {link_id: value}. Saving accepts a partial set but every value must fit
its item; submitting also needs every enabled required item answered. Errors are keyed by
link_id so the patient's page can point at each one.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import replace
from datetime import date, datetime, time
from typing import Any

from services.forms.definitions import Condition, Item, Json, question_items, walk
from services.runtime.errors import FieldErrors
from services.runtime.text import TextError, clean

REQUIRED = "Required."
MAX_STRING = 1000
MAX_TEXT = 10000
MAX_ATTACHMENT_BYTES = 1024 * 1024
ATTACHMENT_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg"})
SAFE_INTEGER = 2**53 - 1  # RFC 8785 numbers are IEEE doubles: beyond this they lose digits
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2})?$")


class Invalid(ValueError):
    """The answer does not fit the item; the message is fit to show beside it."""


def check(items: tuple[Item, ...], answers: dict[str, Json]) -> tuple[dict[str, Json], FieldErrors]:
    """The answers normalised (empty ones dropped), and the invalid ones by link_id."""
    questions = question_items(items)
    cleaned: dict[str, Json] = {}
    errors: FieldErrors = {}
    for link_id, value in answers.items():
        item = questions.get(link_id)
        if item is None:
            errors[link_id] = ["Not a question of this form."]
            continue
        if value is None or value == "" or value == []:
            continue
        try:
            cleaned[link_id] = normalise(item, value)
        except Invalid as exc:
            errors[link_id] = [str(exc)]
    return cleaned, errors


def missing(items: tuple[Item, ...], answers: dict[str, Json]) -> list[str]:
    """link_ids of enabled required items without an answer, in form order."""
    return [
        item.link_id
        for item in walk(_enabled_items(items, answers))
        if item.required and item.link_id not in answers
    ]


def declined(items: tuple[Item, ...], answers: dict[str, Json]) -> list[str]:
    """link_ids of shown agreement items not answered Yes, in form order (a consent form is
    signed only when this is empty)."""
    return [
        item.link_id
        for item in walk(_enabled_items(items, answers))
        if item.agreement and answers.get(item.link_id) is not True
    ]


def keep_enabled(items: tuple[Item, ...], answers: dict[str, Json]) -> dict[str, Json]:
    """Answers of items hidden by their conditions are not part of a finished response."""
    shown = {item.link_id for item in walk(_enabled_items(items, answers))}
    return {k: v for k, v in answers.items() if k in shown}


def _enabled_items(items: tuple[Item, ...], answers: dict[str, Json]) -> tuple[Item, ...]:
    out = []
    for item in items:
        if enabled(item, answers):
            children = _enabled_items(item.items, answers)
            out.append(replace(item, items=children))
    return tuple(out)


def enabled(item: Item, answers: dict[str, Json]) -> bool:
    if not item.enable_when:
        return True
    results = (_holds(c, answers) for c in item.enable_when)
    return any(results) if item.enable_when_any else all(results)


def _holds(condition: Condition, answers: dict[str, Json]) -> bool:
    present = condition.question in answers
    if condition.operator == "exists":
        return present == bool(condition.answer)
    if not present:
        return condition.operator == "!="
    actual, expected = answers[condition.question], condition.answer
    if condition.operator == "=":
        return bool(actual == expected)
    if condition.operator == "!=":
        return bool(actual != expected)
    try:
        if condition.operator == ">":
            return bool(actual > expected)
        if condition.operator == "<":
            return bool(actual < expected)
        if condition.operator == ">=":
            return bool(actual >= expected)
        if condition.operator == "<=":
            return bool(actual <= expected)
    except TypeError:
        return False
    return False


def normalise(item: Item, value: Json) -> Json:
    """The answer in its stored form, or Invalid."""
    kind = item.type
    if kind == "boolean":
        if not isinstance(value, bool):
            raise Invalid("Must be yes or no.")
        return value
    if kind == "decimal":
        return _number(value)
    if kind == "integer":
        number = _number(value)
        if number != int(number):
            raise Invalid("Must be a whole number.")
        return int(number)
    if kind == "date":
        return _parsed(value, _DATE, date.fromisoformat, "Must be a date (YYYY-MM-DD).")
    if kind == "dateTime":
        message = "Must be a date and time with its offset (YYYY-MM-DDTHH:MM+01:00)."
        return _parsed(value, _DATE_TIME, datetime.fromisoformat, message)
    if kind == "time":
        return _parsed(value, _TIME, time.fromisoformat, "Must be a time (HH:MM).")
    if kind == "string":
        return _text(value, MAX_STRING, multiline=False)
    if kind == "text":
        return _text(value, MAX_TEXT, multiline=True)
    if kind == "choice":
        if not isinstance(value, str) or value not in {o.value for o in item.options}:
            raise Invalid("Choose one of the options.")
        return value
    if kind == "open-choice":
        return _text(value, MAX_STRING, multiline=False)
    if kind == "attachment":
        return _attachment(value)
    raise Invalid("This item takes no answer.")


def _number(value: Json) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid("Must be a number.")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid("Must be a number.")
    if abs(value) > SAFE_INTEGER:
        raise Invalid("Number is too large.")
    if isinstance(value, float) and value.is_integer():
        return int(value)  # one spelling per number: 3.0 and 3 hash the same
    return value


def _parsed(value: Json, pattern: re.Pattern[str], parse: Any, message: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise Invalid(message)
    try:
        parse(value)
    except ValueError:
        raise Invalid(message) from None
    return value


def _text(value: Json, limit: int, *, multiline: bool) -> str:
    if not isinstance(value, str):
        raise Invalid("Must be text.")
    try:
        text = clean(value, multiline=multiline).strip()
    except TextError as exc:
        raise Invalid(str(exc)) from None
    if len(text) > limit:
        raise Invalid(f"Must be at most {limit} characters.")
    return text


def _attachment(value: Json) -> dict[str, str]:
    if not isinstance(value, dict) or not isinstance(value.get("data"), str):
        raise Invalid("Must be a file.")
    content_type = value.get("content_type")
    if content_type not in ATTACHMENT_TYPES:
        raise Invalid("Attach a PDF, PNG or JPEG file.")
    try:
        raw = base64.b64decode(value["data"], validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("The file is not valid base64.") from None
    if not raw or len(raw) > MAX_ATTACHMENT_BYTES:
        raise Invalid("The file must be at most 1 MiB.")
    title = _text(value.get("title", ""), 200, multiline=False)
    return {"content_type": content_type, "data": value["data"], "title": title}
