"""Practice → Administrative → Form library: list, view, a simple builder, FHIR import/export.

The builder is one HTML form with a row per item (link_id, text, type, required, agreement,
options one per line, help text, and the group it sits in), so groups nest without any script.
Editing a form whose current version has answers publishes a new version; the page says which
version it shows.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from multidict import MultiDictProxy

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS
from services.gateway.form_view import ITEM_TYPES, KIND_BY_NAME, KIND_NAME, TYPE_BY_NAME, TYPE_NAME
from services.gateway.staff.common import invalid, practice_render, redirect, set_up_by, staff_page
from services.gateway.staff_roles import FORM_CATALOG
from services.runtime.errors import FieldErrors, field_errors

URL = "/staff/practice/forms"
BLANK_ROWS = 3
MAX_ROWS = 500
MAX_UPLOAD = 2 * 1024 * 1024
KINDS = [("consent", "Consent"), ("visit", "Visit"), ("appointment", "Appointment"),
         ("refill", "Refill")]  # fmt: skip
TYPES = [(name, label) for _, name, label in ITEM_TYPES]
_PATH = re.compile(r"items\[(\d+)\]")


def form_id(request: web.Request) -> str:
    raw = request.match_info["form_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise web.HTTPNotFound() from None


async def _get_form(request: web.Request, caller: Caller, version: int = 0) -> pb.Form:
    try:
        form: pb.Form = await request.app[BACKENDS].forms.GetForm(
            pb.GetFormRequest(form_id=form_id(request), version=version),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise web.HTTPNotFound() from None
        raise
    return form


def _render(
    request: web.Request, caller: Caller, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    return practice_render(
        request,
        caller,
        template,
        {**context, "type_label": dict(TYPES), "type_name": TYPE_NAME},
        active_nav="form-library",
        status=status,
    )


# --- Library and one form -----------------------------------------------------------------------


@staff_page
async def library(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _library(request, caller, {})


async def _library(
    request: web.Request, caller: Caller, errors: FieldErrors, status: int = 200
) -> web.Response:
    reply = await request.app[BACKENDS].forms.ListForms(
        pb.ListFormsRequest(), metadata=auth.metadata(request, caller)
    )
    return _render(
        request,
        caller,
        "staff/form_library.html",
        {"forms": list(reply.items), "kinds": KINDS, "errors": errors},
        status=status,
    )


@staff_page
async def view(request: web.Request, caller: Caller) -> web.StreamResponse:
    raw = request.query.get("version", "")
    version = int(raw) if raw.isdigit() and len(raw) < 9 else 0
    current = await _get_form(request, caller)
    shown = (
        current if version in (0, current.version) else await _get_form(request, caller, version)
    )
    return _render(
        request,
        caller,
        "staff/form_view.html",
        {"form": shown, "current": current, "versions": range(current.version, 0, -1)},
    )


@staff_page
async def export(request: web.Request, caller: Caller) -> web.StreamResponse:
    raw = request.query.get("version", "")
    version = int(raw) if raw.isdigit() and len(raw) < 9 else 0
    try:
        reply = await request.app[BACKENDS].forms.ExportQuestionnaire(
            pb.ExportQuestionnaireRequest(form_id=form_id(request), version=version),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        raise
    exported = json.loads(reply.questionnaire_json)
    name = f"questionnaire-{form_id(request)}-v{exported.get('version', version or 'current')}"
    return web.Response(
        body=reply.questionnaire_json.encode(),
        content_type="application/fhir+json",
        headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
    )


@set_up_by(FORM_CATALOG)
async def import_questionnaire(request: web.Request, caller: Caller) -> web.StreamResponse:
    data = await request.post()
    upload = data.get("questionnaire")
    kind = KIND_BY_NAME.get(str(data.get("kind", "")), pb.FORM_KIND_VISIT)
    if not isinstance(upload, web.FileField) or not upload.filename:
        return await _library(
            request, caller, {"questionnaire": ["Choose a Questionnaire JSON file."]}, 400
        )
    raw = upload.file.read(MAX_UPLOAD + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    try:
        # One line: raw newlines between tokens are layout, and requests carry no control
        # characters outside free-text fields (those inside strings stay escaped).
        text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    except (ValueError, RecursionError):
        text = ""
    if not text or len(raw) > MAX_UPLOAD:
        message = "The file must be FHIR Questionnaire JSON (UTF-8) of at most 2 MiB."
        return await _library(request, caller, {"questionnaire": [message]}, 400)
    try:
        form = await request.app[BACKENDS].forms.ImportQuestionnaire(
            pb.ImportQuestionnaireRequest(questionnaire_json=text, kind=kind),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        errors = invalid(exc)
        if errors is None:
            raise
        messages = [m for ms in errors.values() for m in ms]
        return await _library(request, caller, {"questionnaire": messages}, 400)
    return redirect(request, f"{URL}/{form.id}", flash="form-imported")


# --- Builder ------------------------------------------------------------------------------------


@dataclass
class BuilderRow:
    link_id: str = ""
    text: str = ""
    type: str = "string"
    required: bool = False
    agreement: bool = False  # a consent form's question that signing needs answered Yes
    options: str = ""
    help_text: str = ""
    parent: str = ""
    conditions: str = ""  # enable_when as JSON, carried unchanged (not edited here)


@dataclass
class Builder:
    title: str = ""
    kind: str = "visit"
    description: str = ""
    rows: list[BuilderRow] = field(default_factory=list)


def _options_text(item: pb.Item) -> str:
    return "\n".join(
        o.value if o.display in ("", o.value) else f"{o.value} | {o.display}" for o in item.options
    )


def builder_of(form: pb.Form) -> Builder:
    rows: list[BuilderRow] = []

    def add(items: Any, parent: str) -> None:
        for item in items:
            conditions = [
                {"question": c.question, "operator": c.operator, "answer": _value(c)}
                for c in item.enable_when
            ]
            rows.append(
                BuilderRow(
                    link_id=item.link_id,
                    text=item.text,
                    type=TYPE_NAME.get(item.type, "string"),
                    required=item.required,
                    agreement=item.agreement,
                    options=_options_text(item),
                    help_text=item.help_text,
                    parent=parent,
                    conditions=json.dumps({"when": conditions, "any": item.enable_when_any})
                    if conditions
                    else "",
                )
            )
            add(item.items, item.link_id)

    definition = form.definition
    add(definition.items, "")
    return Builder(definition.title, KIND_NAME.get(definition.kind, "visit"),
                   definition.description, rows)  # fmt: skip


def _value(condition: pb.EnableWhen) -> Any:
    return json_format.MessageToDict(condition.answer) if condition.HasField("answer") else None


def builder_from_post(data: MultiDictProxy[Any]) -> Builder:
    def text(name: str) -> str:
        value = data.get(name, "")
        return value.replace("\r\n", "\n").strip() if isinstance(value, str) else ""

    count = min(int(text("rows")) if text("rows").isdigit() else 0, MAX_ROWS)
    rows = []
    for i in range(count):
        if text(f"remove-{i}"):
            continue
        row = BuilderRow(
            link_id=text(f"link_id-{i}"),
            text=text(f"text-{i}"),
            type=text(f"type-{i}") or "string",
            required=bool(text(f"required-{i}")),
            agreement=bool(text(f"agreement-{i}")),
            options=text(f"options-{i}"),
            help_text=text(f"help_text-{i}"),
            parent=text(f"parent-{i}"),
            conditions=text(f"conditions-{i}"),
        )
        if row.link_id or row.text or row.options:
            rows.append(row)
    return Builder(text("title"), text("kind") or "visit", text("description"), rows)


def definition_of(builder: Builder) -> tuple[pb.FormDefinition, dict[str, int], FieldErrors]:
    """The definition, where each item's path (items[0].items[2]) came from, and row errors."""
    errors: FieldErrors = {}
    items: dict[int, pb.Item] = {}
    groups: dict[str, int] = {}
    parents: dict[int, int | None] = {}
    for i, row in enumerate(builder.rows):
        item = pb.Item(
            link_id=row.link_id,
            text=row.text,
            type=TYPE_BY_NAME.get(row.type, pb.ITEM_TYPE_UNSPECIFIED),
            required=row.required,
            agreement=row.agreement,
            help_text=row.help_text,
        )
        for line in row.options.splitlines():
            value, _, display = (part.strip() for part in line.partition("|"))
            if value:
                item.options.add(value=value, display=display or value)
        if row.conditions:
            try:
                carried = json.loads(row.conditions)
                for c in carried.get("when", []):
                    condition = item.enable_when.add(question=c["question"], operator=c["operator"])
                    if c.get("answer") is not None:
                        json_format.ParseDict(c["answer"], condition.answer)
                item.enable_when_any = bool(carried.get("any"))
            except (ValueError, KeyError, TypeError, AttributeError):
                errors[f"link_id-{i}"] = ["Its display condition could not be read."]
        items[i] = item
        parents[i] = None
        if row.parent:
            if row.parent not in groups:
                errors[f"parent-{i}"] = [
                    f"Item {i + 1}: no group {row.parent!r} above it; name a group item's link_id."
                ]
            else:
                parents[i] = groups[row.parent]
        if row.type == "group" and row.link_id:
            groups[row.link_id] = i
    paths: dict[str, int] = {}
    definition = pb.FormDefinition(
        title=builder.title,
        kind=KIND_BY_NAME.get(builder.kind, pb.FORM_KIND_UNSPECIFIED),
        description=builder.description,
    )

    def place(parent: int | None, into: Any, prefix: str) -> None:
        for i, item in items.items():
            if parents[i] == parent:
                path = f"{prefix}items[{len(into)}]"
                paths[path] = i
                into.append(item)
                place(i, into[-1].items, path + ".")

    place(None, definition.items, "")
    return definition, paths, errors


def _row_errors(exc: grpc.aio.AioRpcError, paths: dict[str, int], builder: Builder) -> FieldErrors:
    """The service's messages by the builder's fields (a row's link_id field for item errors)."""
    by_link_id = {row.link_id: i for i, row in enumerate(builder.rows)}
    out: FieldErrors = {}
    for key, messages in field_errors(exc).items():
        if key in paths:
            row = paths[key]
            out.setdefault(f"link_id-{row}", []).extend(f"Item {row + 1}: {m}" for m in messages)
        elif key in by_link_id:
            row = by_link_id[key]
            out.setdefault(f"link_id-{row}", []).extend(f"Item {row + 1}: {m}" for m in messages)
        elif _PATH.match(key):
            out.setdefault("_form", []).extend(messages)
        else:
            out.setdefault(key, []).extend(messages)
    return out or {"_form": [exc.details() or "Please check the form."]}


def _builder_page(
    request: web.Request,
    caller: Caller,
    builder: Builder,
    *,
    form: pb.Form | None,
    errors: FieldErrors | None = None,
    extra_rows: int = BLANK_ROWS,
    status: int = 200,
) -> web.Response:
    rows = builder.rows + [BuilderRow() for _ in range(extra_rows)]
    return _render(
        request,
        caller,
        "staff/form_builder.html",
        {
            "builder": builder,
            "rows": rows,
            "form": form,
            "kinds": KINDS,
            "types": TYPES,
            "errors": errors or {},
            "action": f"{URL}/{form.id}/edit" if form else f"{URL}/new",
        },
        status=status,
    )


@set_up_by(FORM_CATALOG)
async def new_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    return _builder_page(request, caller, Builder(), form=None, extra_rows=5)


@set_up_by(FORM_CATALOG)
async def edit_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    form = await _get_form(request, caller)
    return _builder_page(request, caller, builder_of(form), form=form)


@set_up_by(FORM_CATALOG)
async def save_new(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _save(request, caller, None)


@set_up_by(FORM_CATALOG)
async def save_edit(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _save(request, caller, await _get_form(request, caller))


async def _save(request: web.Request, caller: Caller, form: pb.Form | None) -> web.StreamResponse:
    data = await request.post()
    builder = builder_from_post(data)
    if form is not None:
        builder.kind = KIND_NAME.get(form.definition.kind, builder.kind)  # fixed once created
    if data.get("add_rows"):
        return _builder_page(request, caller, builder, form=form, extra_rows=BLANK_ROWS + 5)
    definition, paths, errors = definition_of(builder)
    if errors:
        return _builder_page(request, caller, builder, form=form, errors=errors, status=400)
    forms = request.app[BACKENDS].forms
    metadata = auth.metadata(request, caller)
    try:
        if form is None:
            saved = await forms.CreateForm(
                pb.CreateFormRequest(definition=definition), metadata=metadata
            )
        else:
            saved = await forms.UpdateForm(
                pb.UpdateFormRequest(form_id=form.id, definition=definition), metadata=metadata
            )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        found = _row_errors(exc, paths, builder)
        return _builder_page(request, caller, builder, form=form, errors=found, status=400)
    flash = "form-created" if form is None else "form-saved"
    return redirect(request, f"{URL}/{saved.id}", flash=flash)


def setup(app: web.Application) -> None:
    app.router.add_get(URL, library)
    app.router.add_get(URL + "/new", new_form)
    app.router.add_post(URL + "/new", save_new)
    app.router.add_post(URL + "/import", import_questionnaire)
    app.router.add_get(URL + "/{form_id}", view)
    app.router.add_get(URL + "/{form_id}/edit", edit_form)
    app.router.add_post(URL + "/{form_id}/edit", save_edit)
    app.router.add_get(URL + "/{form_id}/questionnaire.json", export)
