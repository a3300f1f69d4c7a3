"""The patient's Refills page: ask for a refill, see each request's status and the clinic's
answer, withdraw one still pending. The patient is the principal's; ids in URLs are only
looked up among their own requests (another patient's is a 404)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
import grpc
from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth, form_text
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.patient import present
from services.gateway.patient.session import my_profile, page_url, realm_of, signed_in
from services.gateway.patient.views import page_context
from services.gateway.records_view import refill_status
from services.gateway.staff.common import format_when, invalid, when
from services.runtime.errors import FieldErrors, field_errors, precondition_text

FIELDS = ("medication_id", "medication", "dose", "quantity", "pharmacy", "note")


def find_available_url(realm: str) -> str:
    """Where "needs an appointment" sends the patient: the Appointments page's Find Available."""
    return page_url(realm, "appointments") + "#find-title"


async def page(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return await _render(request, who, {}, {})


async def _render(
    request: web.Request,
    who: auth.Caller,
    values: dict[str, str],
    errors: FieldErrors,
    status: int = 200,
) -> web.Response:
    forms = request.app[BACKENDS].forms
    md = auth.metadata(request, who)
    listed = await forms.ListRefillRequests(pb.ListRefillRequestsRequest(), metadata=md)
    meds = await forms.ListMedications(pb.ListMedicationsRequest(), metadata=md)
    patient = present.profile(await my_profile(request, who))
    zone = request.app[SETTINGS].clinic_timezone
    realm = realm_of(request)
    requests = [_row(r, zone) for r in listed.items]
    context: dict[str, Any] = {
        "offered": listed.offered,
        "requests": requests,
        "medications": [(m.id, " ".join(p for p in (m.name, m.dose) if p)) for m in meds.items],
        "values": values,
        "errors": errors,
        "appointments_url": find_available_url(realm),
    }
    return aiohttp_jinja2.render_template(
        "patient/refills.html",
        request,
        page_context(request, who, patient, "refills", **context),
        status=status,
    )


def _row(r: pb.RefillRequest, zone: Any) -> dict[str, Any]:
    name, label, level = refill_status(r.status)
    return {
        "id": r.id,
        "medication": " ".join(p for p in (r.medication, r.dose) if p),
        "quantity": r.quantity,
        "pharmacy": r.pharmacy,
        "note": r.note,
        "status": name,
        "status_label": label,
        "level": level,
        "answer": r.decision_note,
        "requested": format_when(when(r.requested_at), zone),
        "decided": format_when(when(r.decided_at), zone),
        "pending": r.status == pb.REFILL_STATUS_REQUESTED,
    }


async def request_refill(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    posted, bad = await form_text.read(request)
    values = {name: posted.get(name, "") for name in FIELDS}
    if bad:
        return await _render(request, who, values, bad, status=400)
    try:
        await request.app[BACKENDS].forms.RequestRefill(
            pb.RequestRefillRequest(**values), metadata=auth.metadata(request, who)
        )
    except grpc.aio.AioRpcError as exc:
        errors = invalid(exc)
        if errors is None and exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            # REFILL_PENDING names the field it is about; REFILLS_NOT_OFFERED none.
            errors = field_errors(exc) or {"_form": [precondition_text(exc)]}
        if errors is None:
            raise
        return await _render(request, who, values, errors, status=400)
    raise web.HTTPSeeOther(page_url(realm_of(request), "refills", "refill-requested"))


async def withdraw(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    try:
        await request.app[BACKENDS].forms.WithdrawRefillRequest(
            pb.WithdrawRefillRequestRequest(refill_request_id=request.match_info["refill_id"]),
            metadata=auth.metadata(request, who),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return await _render(request, who, {}, {"_form": [precondition_text(exc)]}, status=409)
        raise
    raise web.HTTPSeeOther(page_url(realm_of(request), "refills", "refill-withdrawn"))


async def detail(request: web.Request) -> web.StreamResponse:
    """One request (the page links here); another patient's is a 404."""
    who = await signed_in(request)
    try:
        found = await request.app[BACKENDS].forms.GetRefillRequest(
            pb.GetRefillRequestRequest(refill_request_id=request.match_info["refill_id"]),
            metadata=auth.metadata(request, who),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        raise
    patient = present.profile(await my_profile(request, who))
    zone = request.app[SETTINGS].clinic_timezone
    return aiohttp_jinja2.render_template(
        "patient/refill.html",
        request,
        page_context(
            request,
            who,
            patient,
            "refills",
            r=_row(found, zone),
            appointments_url=find_available_url(realm_of(request)),
        ),
    )
