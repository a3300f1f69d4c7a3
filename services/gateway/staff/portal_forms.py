"""Practice → Administrative: Patient Portal Forms (which forms, in which order) and visit forms.

The seed's procedure: Practice tab → Administrative → Patient Portal Forms; the complete list of
forms; a checkbox per form and its order; Update saves both in one step. Up/Down are submit
buttons that re-show the list in the new order without saving (portal-forms.js moves rows in
place instead), so the page works without JavaScript.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb
from portal.scheduling.v1 import scheduling_pb2
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS
from services.gateway.staff.common import (
    invalid,
    practice_render,
    redirect,
    set_up_by,
    staff_page,
)
from services.gateway.staff_roles import FORM_CATALOG

URL = "/staff/practice/portal-forms"
VISIT_URL = "/staff/practice/visit-forms"


@staff_page
async def administrative(request: web.Request, caller: Caller) -> web.StreamResponse:
    return practice_render(
        request, caller, "staff/practice_administrative.html", {}, active_nav="administrative"
    )


# --- Patient Portal Forms ---------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    form: pb.FormSummary
    checked: bool


async def _forms(request: web.Request, caller: Caller) -> list[pb.FormSummary]:
    reply = await request.app[BACKENDS].forms.ListForms(
        pb.ListFormsRequest(), metadata=auth.metadata(request, caller)
    )
    return list(reply.items)


@staff_page
async def portal_forms(request: web.Request, caller: Caller) -> web.StreamResponse:
    forms = await _forms(request, caller)
    rows = [Row(f, f.available_in_portal) for f in forms]
    return _page(request, caller, rows)


def _page(
    request: web.Request,
    caller: Caller,
    rows: list[Row],
    *,
    errors: dict[str, list[str]] | None = None,
    notice: str = "",
    status: int = 200,
) -> web.Response:
    messages = [{"level": "info", "text": notice}] if notice else []
    return practice_render(
        request,
        caller,
        "staff/portal_forms.html",
        {"rows": rows, "errors": errors or {}, "messages": messages},
        active_nav="portal-forms",
        status=status,
    )


def _moved(order: list[str], move: str) -> list[str]:
    """`order` with one form moved a place up or down ("up:<id>" / "down:<id>")."""
    direction, _, form_id = move.partition(":")
    if form_id not in order:
        return order
    i = order.index(form_id)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(order):
        order[i], order[j] = order[j], order[i]
    return order


@set_up_by(FORM_CATALOG)
async def update_portal_forms(request: web.Request, caller: Caller) -> web.StreamResponse:
    data = await request.post()
    order = [str(v) for v in data.getall("order", [])]
    checked = {str(v) for v in data.getall("available", [])}
    forms = {f.id: f for f in await _forms(request, caller)}
    # The page's order first (forms added meanwhile go last); ids that are not forms drop out.
    order = [i for i in dict.fromkeys(order) if i in forms] + [i for i in forms if i not in order]
    move = str(data.get("move", ""))
    if move:
        order = _moved(order, move)
        rows = [Row(forms[i], i in checked) for i in order]
        title = forms[move.partition(":")[2]].title if move.partition(":")[2] in forms else ""
        notice = f"Moved {title}. Click Update to save the order." if title else ""
        return _page(request, caller, rows, notice=notice)
    chosen = [i for i in order if i in checked]
    try:
        await request.app[BACKENDS].forms.SetPortalForms(
            pb.SetPortalFormsRequest(form_ids=chosen), metadata=auth.metadata(request, caller)
        )
    except grpc.aio.AioRpcError as exc:
        errors = invalid(exc)
        if errors is None:
            raise
        rows = [Row(forms[i], i in checked) for i in order]
        return _page(
            request,
            caller,
            rows,
            errors={"_form": [m for ms in errors.values() for m in ms]},
            status=400,
        )
    return redirect(request, URL, flash="portal-forms-updated")


# --- Visit forms per appointment type ---------------------------------------------------------


@staff_page
async def visit_forms(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _visit_page(request, caller)


async def _visit_page(
    request: web.Request,
    caller: Caller,
    *,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> web.Response:
    backends = request.app[BACKENDS]
    metadata = auth.metadata(request, caller)
    types = await backends.scheduling.ListAppointmentTypes(
        scheduling_pb2.ListAppointmentTypesRequest(), metadata=metadata
    )
    forms = [
        f
        for f in await _forms(request, caller)
        if f.kind in (pb.FORM_KIND_VISIT, pb.FORM_KIND_APPOINTMENT)
    ]
    chosen: dict[str, set[str]] = {}
    for kind in types.items:
        reply = await backends.forms.GetVisitForms(
            pb.GetVisitFormsRequest(appointment_type_id=kind.id), metadata=metadata
        )
        chosen[kind.id] = {f.id for f in reply.forms}
    return practice_render(
        request,
        caller,
        "staff/visit_forms.html",
        {"types": list(types.items), "forms": forms, "chosen": chosen, "errors": errors or {}},
        active_nav="visit-forms",
        status=status,
    )


@set_up_by(FORM_CATALOG)
async def save_visit_forms(request: web.Request, caller: Caller) -> web.StreamResponse:
    type_id = request.match_info["type_id"]
    try:
        uuid.UUID(type_id)
    except ValueError:
        raise web.HTTPNotFound() from None
    data = await request.post()
    form_ids = [str(v) for v in data.getall("form_id", [])]
    try:
        await request.app[BACKENDS].forms.SetVisitForms(
            pb.SetVisitFormsRequest(appointment_type_id=type_id, form_ids=form_ids),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        errors = invalid(exc)
        if errors is None:
            raise
        return await _visit_page(
            request, caller, errors={"_form": [m for ms in errors.values() for m in ms]}, status=400
        )
    return redirect(request, VISIT_URL, flash="visit-forms-saved")


def setup(app: web.Application) -> None:
    app.router.add_get("/staff/practice/administrative", administrative)
    app.router.add_get(URL, portal_forms)
    app.router.add_post(URL, update_portal_forms)
    app.router.add_get(VISIT_URL, visit_forms)
    app.router.add_post(VISIT_URL + "/{type_id}", save_visit_forms)
