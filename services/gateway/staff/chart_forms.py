"""Chart → Forms: a patient's chart forms, adding one, answers, signature, review, print, PDF.

Every page names the patient in its URL and the chart form must belong to that patient (else a
404), so a link can never show one patient's form under another's name. A form opened from the
Forms review queue (`?from=review-queue`) links back to it, and its review returns there.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth, form_view
from services.gateway.auth import Caller
from services.gateway.clinic_time import DATE_ERROR, parse_date
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.staff.common import form, invalid, redirect, render, staff_page
from services.gateway.staff.patients import fetch_patient, patient_context
from services.gateway.staff.review_queue import FROM as FROM_QUEUE
from services.gateway.staff.review_queue import URL as QUEUE_URL
from services.runtime.errors import FieldErrors, precondition_text

END_OF_DAY = time(23, 59)


def chart_form_id(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["chart_form_id"]))
    except ValueError:
        raise web.HTTPNotFound() from None


def _render(
    request: web.Request,
    caller: Caller,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> web.Response:
    zone = request.app[SETTINGS].clinic_timezone
    return render(request, caller, template, {**context, **form_view.labels(zone)}, status=status)


# --- The chart's forms --------------------------------------------------------------------------


@staff_page
async def chart_forms(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _list_page(request, caller, {}, {})


async def _list_page(
    request: web.Request,
    caller: Caller,
    values: dict[str, str],
    errors: FieldErrors,
    status: int = 200,
) -> web.Response:
    patient = await fetch_patient(request, caller)
    backends = request.app[BACKENDS]
    metadata = auth.metadata(request, caller)
    try:
        listed = await backends.forms.ListChartForms(
            pb.ListChartFormsRequest(patient_id=patient.id), metadata=metadata
        )
        items = list(listed.items)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        items = []  # forms has not opened the chart yet (registration is an event)
    library = await backends.forms.ListForms(pb.ListFormsRequest(), metadata=metadata)
    return _render(
        request,
        caller,
        "staff/chart_forms.html",
        {
            **patient_context(patient),
            "items": items,
            "library": [
                (f.id, f"{f.title} ({form_view.kind_label(f.kind)})") for f in library.items
            ],
            "values": values,
            "errors": errors,
        },
        status=status,
    )


def _due(value: str, zone: tzinfo) -> Timestamp | None:
    """A due date as the end of that day in the clinic's time zone; ValueError if not a date
    (or one outside the years clinic_time takes)."""
    if not value:
        return None
    day = parse_date(value)
    if day is None:
        raise ValueError(value)
    ts = Timestamp()
    ts.FromDatetime(datetime.combine(day, END_OF_DAY, tzinfo=zone))
    return ts


@staff_page
async def add_chart_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    posted = await form(request)
    values = posted.values
    errors = dict(posted.errors)
    patient = await fetch_patient(request, caller)
    if not values.get("form_id"):
        errors["form_id"] = ["Choose a form."]
    try:
        due = _due(values.get("due", ""), request.app[SETTINGS].clinic_timezone)
    except ValueError:
        errors["due"] = [DATE_ERROR]
        due = None
    if errors:
        return await _list_page(request, caller, values, errors, status=400)
    rpc = pb.AssignChartFormRequest(patient_id=patient.id, form_id=values["form_id"])
    if due is not None:
        rpc.due.CopyFrom(due)
    try:
        await request.app[BACKENDS].forms.AssignChartForm(
            rpc, metadata=auth.metadata(request, caller)
        )
    except grpc.aio.AioRpcError as exc:
        found = invalid(exc)
        if found is None:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            found = {"_form": ["Forms has not opened this chart yet; try again in a moment."]}
        return await _list_page(request, caller, values, found, status=400)
    return redirect(request, f"/staff/patients/{patient.id}/forms", flash="chart-form-added")


# --- One chart form -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    patient: Any
    chart_form: pb.ChartForm
    answers: dict[str, Any]
    verification: pb.Verification | None


async def _load(request: web.Request, caller: Caller, *, verify: bool = True) -> Loaded:
    patient = await fetch_patient(request, caller)
    forms = request.app[BACKENDS].forms
    metadata = auth.metadata(request, caller)
    try:
        chart_form = await forms.GetChartForm(
            pb.GetChartFormRequest(chart_form_id=chart_form_id(request)), metadata=metadata
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        raise
    if chart_form.summary.patient_id != patient.id:
        raise web.HTTPNotFound()
    verification = None
    if verify and chart_form.HasField("signature"):
        verification = await forms.VerifySignature(
            pb.VerifySignatureRequest(chart_form_id=chart_form.summary.id), metadata=metadata
        )
    return Loaded(patient, chart_form, form_view.answers_of(chart_form.answers), verification)


def _context(loaded: Loaded, came_from: str = "") -> dict[str, Any]:
    summary = loaded.chart_form.summary
    return {
        "from_queue": FROM_QUEUE if came_from == FROM_QUEUE else "",
        "queue_url": QUEUE_URL,
        **patient_context(loaded.patient),
        "cf": loaded.chart_form,
        "summary": summary,
        "answers": loaded.answers,
        "signature": loaded.chart_form.signature
        if loaded.chart_form.HasField("signature")
        else None,
        "verification": loaded.verification,
        "reviewable": summary.status in form_view.REVIEWABLE,
        "cf_url": f"/staff/patients/{summary.patient_id}/forms/{summary.id}",
    }


@staff_page
async def view(request: web.Request, caller: Caller) -> web.StreamResponse:
    loaded = await _load(request, caller)
    context = _context(loaded, request.query.get("from", ""))
    return _render(request, caller, "staff/chart_form.html", {**context, "errors": {}, "note": ""})


@staff_page
async def print_view(request: web.Request, caller: Caller) -> web.StreamResponse:
    loaded = await _load(request, caller)
    return _render(request, caller, "staff/chart_form_print.html", _context(loaded))


@staff_page
async def review(request: web.Request, caller: Caller) -> web.StreamResponse:
    posted = await form(request)
    loaded = await _load(request, caller, verify=False)
    decision = posted.values.get("decision", "")
    note = posted.values.get("note", "")
    came_from = posted.values.get("from", "")
    errors: FieldErrors = dict(posted.errors)
    if decision == "return" and not note:
        errors["note"] = ["Give the patient a reason for returning the form."]
    if decision not in ("accept", "return"):
        errors["_form"] = ["Choose Accept or Return."]
    if not errors:
        rpc = pb.ReviewChartFormRequest(
            chart_form_id=loaded.chart_form.summary.id,
            decision=pb.REVIEW_DECISION_ACCEPT
            if decision == "accept"
            else pb.REVIEW_DECISION_RETURN,
            note=note,
        )
        try:
            await request.app[BACKENDS].forms.ReviewChartForm(
                rpc, metadata=auth.metadata(request, caller)
            )
        except grpc.aio.AioRpcError as exc:
            found = invalid(exc)
            if found is None:
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                found = {"_form": [precondition_text(exc) or "This form cannot be reviewed now."]}
            errors = found
        else:
            flash = "chart-form-accepted" if decision == "accept" else "chart-form-returned"
            back = QUEUE_URL if came_from == FROM_QUEUE else _context(loaded)["cf_url"]
            return redirect(request, back, flash=flash)
    loaded = await _load(request, caller)
    return _render(
        request,
        caller,
        "staff/chart_form.html",
        {**_context(loaded, came_from), "errors": errors, "note": note},
        status=400,
    )


@staff_page
async def certificate(request: web.Request, caller: Caller) -> web.StreamResponse:
    loaded = await _load(request, caller, verify=False)
    return await form_view.certificate_response(request, caller, loaded.chart_form.summary.id)


def setup(app: web.Application) -> None:
    base = "/staff/patients/{patient_id}/forms"
    app.router.add_get(base, chart_forms)
    app.router.add_post(base, add_chart_form)
    app.router.add_get(base + "/{chart_form_id}", view)
    app.router.add_post(base + "/{chart_form_id}/review", review)
    app.router.add_get(base + "/{chart_form_id}/print", print_view)
    app.router.add_get(base + "/{chart_form_id}/certificate.pdf", certificate)
