"""Forms as the staff and patient pages show and read them: labels, answers in and out.

A question's control is named `q-<link_id>` (its id `f-q-<link_id>`), so the service's errors,
keyed by link_id, become field messages that the error summary links to. Posted text is turned
into typed answers here (yes/no, numbers, dates with the clinic's offset); what cannot be read
is a field message before anything reaches the service.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth
from services.gateway.backends import PDF_DEADLINE
from services.gateway.context import BACKENDS
from services.runtime.errors import FieldErrors

Json = Any
PREFIX = "q-"
OTHER = "__other__"  # the open-choice radio that means "the text I typed"
MAX_FILE = 1024 * 1024

KIND_LABEL: dict[int, str] = {
    pb.FORM_KIND_CONSENT: "Consent",
    pb.FORM_KIND_VISIT: "Visit",
    pb.FORM_KIND_APPOINTMENT: "Appointment",
    pb.FORM_KIND_REFILL: "Refill",
}
KIND_BY_NAME = {
    "consent": pb.FORM_KIND_CONSENT,
    "visit": pb.FORM_KIND_VISIT,
    "appointment": pb.FORM_KIND_APPOINTMENT,
    "refill": pb.FORM_KIND_REFILL,
}
KIND_NAME = {v: k for k, v in KIND_BY_NAME.items()}

# (label, badge level) per status; the level picks the badge colour.
STATUS: dict[int, tuple[str, str]] = {
    pb.CHART_FORM_STATUS_NOT_STARTED: ("Not started", ""),
    pb.CHART_FORM_STATUS_IN_PROGRESS: ("In progress", "info"),
    pb.CHART_FORM_STATUS_COMPLETED: ("Completed", "accent"),
    pb.CHART_FORM_STATUS_SIGNED: ("Signed", "accent"),
    pb.CHART_FORM_STATUS_ACCEPTED: ("Accepted", "success"),
    pb.CHART_FORM_STATUS_RETURNED: ("Returned", "warning"),
    pb.CHART_FORM_STATUS_WITHDRAWN: ("Withdrawn", ""),
}
EDITABLE = frozenset(
    {
        pb.CHART_FORM_STATUS_NOT_STARTED,
        pb.CHART_FORM_STATUS_IN_PROGRESS,
        pb.CHART_FORM_STATUS_RETURNED,
    }
)
REVIEWABLE = frozenset({pb.CHART_FORM_STATUS_COMPLETED, pb.CHART_FORM_STATUS_SIGNED})

# DESIGN §4's item types, as the builder offers them: (proto enum, name, label).
ITEM_TYPES = [
    (pb.ITEM_TYPE_STRING, "string", "Short text"),
    (pb.ITEM_TYPE_TEXT, "text", "Long text"),
    (pb.ITEM_TYPE_BOOLEAN, "boolean", "Yes / no"),
    (pb.ITEM_TYPE_CHOICE, "choice", "Choice (one of the options)"),
    (pb.ITEM_TYPE_OPEN_CHOICE, "open-choice", "Choice or own answer"),
    (pb.ITEM_TYPE_INTEGER, "integer", "Whole number"),
    (pb.ITEM_TYPE_DECIMAL, "decimal", "Number"),
    (pb.ITEM_TYPE_DATE, "date", "Date"),
    (pb.ITEM_TYPE_DATE_TIME, "dateTime", "Date and time"),
    (pb.ITEM_TYPE_TIME, "time", "Time"),
    (pb.ITEM_TYPE_ATTACHMENT, "attachment", "File"),
    (pb.ITEM_TYPE_DISPLAY, "display", "Text to read (no answer)"),
    (pb.ITEM_TYPE_GROUP, "group", "Group (a heading for the items in it)"),
]
TYPE_NAME: dict[int, str] = {enum: name for enum, name, _ in ITEM_TYPES}
TYPE_BY_NAME = {name: enum for enum, name, _ in ITEM_TYPES}
NO_ANSWER = frozenset({pb.ITEM_TYPE_GROUP, pb.ITEM_TYPE_DISPLAY})


def kind_label(kind: int) -> str:
    return KIND_LABEL.get(kind, "Other")


def status_label(status: int) -> str:
    return STATUS.get(status, ("Unknown", ""))[0]


def status_level(status: int) -> str:
    return STATUS.get(status, ("", ""))[1]


def labels(zone: tzinfo) -> dict[str, Any]:
    """What the forms templates use to show kinds, statuses and answers."""
    return {
        "kind_label": kind_label,
        "status_label": status_label,
        "status_level": status_level,
        "answer_text": lambda item, value: answer_text(item, value, zone),
        "options_of": lambda item: [(o.value, o.display or o.value) for o in item.options],
    }


async def certificate_response(
    request: web.Request, caller: auth.Caller, chart_form_id: str
) -> web.Response:
    """The signature certificate PDF as a download (staff and patient pages)."""
    try:
        certificate = await request.app[BACKENDS].forms.GetSignatureCertificate(
            pb.GetSignatureCertificateRequest(chart_form_id=chart_form_id),
            metadata=auth.metadata(request, caller),
            timeout=PDF_DEADLINE,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            raise web.HTTPNotFound() from None  # another's form, or one not signed
        raise
    return web.Response(
        body=certificate.pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{certificate.filename}"'},
    )


def type_name(item: pb.Item) -> str:
    return TYPE_NAME.get(item.type, "")


def field_name(link_id: str) -> str:
    return PREFIX + link_id


def walk(items: Any) -> Iterator[pb.Item]:
    for item in items:
        yield item
        yield from walk(item.items)


def questions(items: Any) -> list[pb.Item]:
    return [item for item in walk(items) if item.type not in NO_ANSWER]


SUMMARY_QUESTION = 60  # characters of a question an error summary entry quotes


def summary_prefixes(items: Any) -> dict[str, str]:
    """What an error summary entry says before a question's message, so that the entry names
    the question ("Do you smoke? Answer this question."); long questions are shortened."""
    out: dict[str, str] = {}
    for item in questions(items):
        text = " ".join((item.text or item.link_id).split())
        if len(text) > SUMMARY_QUESTION:
            text = text[:SUMMARY_QUESTION].rsplit(" ", 1)[0].rstrip(",;:.") + "…"
        out[field_name(item.link_id)] = text + (" " if text.endswith(("?", "…")) else ": ")
    return out


def answers_of(struct: Struct) -> dict[str, Json]:
    return dict(json_format.MessageToDict(struct))


def to_struct(answers: Mapping[str, Json]) -> Struct:
    out = Struct()
    out.update(dict(answers))
    return out


def rekey(errors: FieldErrors) -> FieldErrors:
    """The service's errors (by link_id) as the page's field names; others kept as they are."""
    out: FieldErrors = {}
    for key, messages in errors.items():
        name = key if key.startswith("_") or key in PAGE_FIELDS else field_name(key)
        out.setdefault(name, []).extend(messages)
    return out


# Fields of the sign form that are not questions (the service names them in its errors).
PAGE_FIELDS = frozenset({"typed_name", "agree_to_electronic_signature", "drawn_signature_png"})


# --- Answers shown in controls ----------------------------------------------------------------


def _number_text(value: Json) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def control_values(items: Any, answers: Mapping[str, Json], zone: tzinfo) -> dict[str, str]:
    """The stored answers as the text each control shows (field name -> text)."""
    out: dict[str, str] = {}
    for item in questions(items):
        if item.link_id not in answers:
            continue
        value = answers[item.link_id]
        name = field_name(item.link_id)
        if item.type == pb.ITEM_TYPE_BOOLEAN:
            out[name] = "yes" if value is True else "no" if value is False else ""
        elif item.type in (pb.ITEM_TYPE_DECIMAL, pb.ITEM_TYPE_INTEGER):
            out[name] = _number_text(value)
        elif item.type == pb.ITEM_TYPE_DATE_TIME and isinstance(value, str):
            out[name] = _local(value, zone)
        elif item.type == pb.ITEM_TYPE_OPEN_CHOICE and isinstance(value, str):
            if value in {o.value for o in item.options}:
                out[name] = value
            else:
                out[name], out[name + "-other"] = OTHER, value
        elif item.type == pb.ITEM_TYPE_ATTACHMENT and isinstance(value, dict):
            out[name] = str(value.get("title") or value.get("content_type", "file"))
        else:
            out[name] = str(value)
    return out


def _local(value: str, zone: tzinfo) -> str:
    try:
        return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%dT%H:%M")
    except ValueError:
        return value


def answer_text(item: pb.Item, value: Json, zone: tzinfo) -> str:
    """An answer as a sentence shows it (staff view, print, done forms)."""
    if value is None:
        return ""
    if item.type == pb.ITEM_TYPE_BOOLEAN:
        return "Yes" if value else "No"
    if item.type in (pb.ITEM_TYPE_CHOICE, pb.ITEM_TYPE_OPEN_CHOICE):
        for option in item.options:
            if option.value == value:
                return option.display or option.value
        return str(value)
    if item.type in (pb.ITEM_TYPE_DECIMAL, pb.ITEM_TYPE_INTEGER):
        return _number_text(value)
    if item.type == pb.ITEM_TYPE_DATE_TIME and isinstance(value, str):
        return _local(value, zone).replace("T", " ")
    if item.type == pb.ITEM_TYPE_ATTACHMENT and isinstance(value, dict):
        return f"File: {value.get('title') or 'untitled'} ({value.get('content_type', '')})"
    return str(value)


# --- Answers read from a posted form ------------------------------------------------------------


@dataclass(frozen=True)
class ReadAnswers:
    answers: dict[str, Json]
    errors: FieldErrors
    values: dict[str, str]  # what was typed, to show again


def read_answers(
    items: Any,
    posted: Mapping[str, str],
    files: Mapping[str, web.FileField],
    current: Mapping[str, Json],
    zone: tzinfo,
) -> ReadAnswers:
    """Every question's answer from the posted controls (an empty control removes the answer)."""
    answers: dict[str, Json] = {}
    errors: FieldErrors = {}
    values = {k: v for k, v in posted.items() if k.startswith(PREFIX)}
    for item in questions(items):
        name = field_name(item.link_id)
        raw = posted.get(name, "").strip()
        try:
            value = _answer(item, raw, posted.get(name + "-other", "").strip(), zone)
            if item.type == pb.ITEM_TYPE_ATTACHMENT:
                value = _attachment(files.get(name), current.get(item.link_id), posted, name)
        except ValueError as exc:
            errors[name] = [str(exc)]
            continue
        if value is not None:
            answers[item.link_id] = value
    return ReadAnswers(answers, errors, values)


def _answer(item: pb.Item, raw: str, other: str, zone: tzinfo) -> Json:
    if item.type == pb.ITEM_TYPE_OPEN_CHOICE:
        if raw == OTHER:
            return other or None
        return raw or other or None
    if not raw:
        return None
    if item.type == pb.ITEM_TYPE_BOOLEAN:
        if raw not in ("yes", "no"):
            raise ValueError("Choose yes or no.")
        return raw == "yes"
    if item.type == pb.ITEM_TYPE_INTEGER:
        try:
            return int(raw)
        except ValueError:
            raise ValueError("Enter a whole number, like 3.") from None
    if item.type == pb.ITEM_TYPE_DECIMAL:
        try:
            number = float(raw.replace(",", "."))
        except ValueError:
            raise ValueError("Enter a number, like 72.5.") from None
        return number
    if item.type == pb.ITEM_TYPE_DATE_TIME:
        try:
            local = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError("Enter a date and time, like 2026-03-01 09:30.") from None
        if local.tzinfo is None:
            local = local.replace(tzinfo=zone)
        return local.isoformat(timespec="minutes")
    return raw


def _attachment(
    upload: web.FileField | None, current: Json, posted: Mapping[str, str], name: str
) -> Json:
    if upload is not None and upload.filename:
        data = upload.file.read(MAX_FILE + 1)
        if len(data) > MAX_FILE:
            raise ValueError("The file must be at most 1 MiB.")
        if data:
            return {
                "content_type": upload.content_type,
                "data": base64.b64encode(data).decode(),
                "title": upload.filename[:200],
            }
    if posted.get(name + "-remove"):
        return None
    return current


async def read_post(request: web.Request) -> tuple[dict[str, str], dict[str, web.FileField]]:
    """The posted text values (the last of a repeated name) and the uploaded files."""
    data = await request.post()
    texts = {k: v for k, v in data.items() if isinstance(v, str)}
    files = {k: v for k, v in data.items() if isinstance(v, web.FileField)}
    return texts, files
