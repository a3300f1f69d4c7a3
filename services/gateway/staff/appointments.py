"""Staff appointments: book for a patient (from the chart, or from the calendar after choosing
the patient), one appointment's page, cancel, reschedule, and mark arrived / no-show / fulfilled.

Booking is the seed's steps: appointment type → Find Available → choose provider and time →
Confirm Appointment. A time taken meanwhile shows the fresh alternatives scheduling sent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as idpb
from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import auth, find_available, form_text
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS
from services.gateway.find_available import Found, Search
from services.gateway.schedule_view import (
    PATIENT_NOT_READY_TEXT,
    alternatives,
    appointment_view,
    by_day,
    parse_slot,
    refusal_text,
    slot_refusal,
)
from services.gateway.staff.common import (
    invalid,
    patient_id,
    practice_render,
    redirect,
    render,
    staff_page,
)
from services.gateway.staff.patients import fetch_patient, full_name, patient_context
from services.gateway.staff.scheduling_common import (
    appointment_types,
    not_found_as_404,
    providers,
    scheduling,
    url_id,
    zone,
)
from services.runtime.errors import FieldErrors, not_found_kind

APPOINTMENTS = "/staff/appointments"
STATUS_ACTIONS = {
    "arrived": pb.APPOINTMENT_STATUS_ARRIVED,
    "noshow": pb.APPOINTMENT_STATUS_NOSHOW,
    "fulfilled": pb.APPOINTMENT_STATUS_FULFILLED,
}
CHOOSE_TIME = "Choose one of the times."


def _chosen(values: Mapping[str, str]) -> tuple[str, Any] | None:
    return parse_slot(values.get("slot", ""))


async def _options(request: web.Request, caller: Caller, type_id: str) -> dict[str, Any]:
    """The drop-downs: every type, and the active providers (those offering the type, once
    one is chosen)."""
    types, active = await asyncio.gather(
        appointment_types(request, caller), providers(request, caller)
    )
    kind = next((t for t in types if t.id == type_id), None)
    offering = [p for p in active if kind is None or p.id in kind.provider_ids]
    return {
        "types": types,
        "type_options": [(t.id, t.name) for t in types],
        "provider_options": [(p.id, p.display_name) for p in offering],
    }


# --- Book for a patient -----------------------------------------------------------------------


@staff_page
async def book_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    search = find_available.search_from(request.query)
    found = None
    if "type" in request.query:  # Find Available was clicked
        found = await find_available.find(
            request, caller, search, zone(request), patient_id=patient_id(request)
        )
    return await _book_page(
        request, caller, search, found, status=400 if found and found.errors else 200
    )


async def _book_page(
    request: web.Request,
    caller: Caller,
    search: Search,
    found: Found | None,
    *,
    refusal: str = "",
    status: int = 200,
) -> web.Response:
    patient, options = await asyncio.gather(
        fetch_patient(request, caller), _options(request, caller, search.type_id)
    )
    base = f"/staff/patients/{patient.id}/appointments/book"
    return render(
        request,
        caller,
        "staff/appointment_book.html",
        {
            **patient_context(patient),
            **options,
            **_found_context(base, search, found, refusal),
            "confirm_url": f"/staff/patients/{patient.id}/appointments",
            "confirm_label": "Confirm Appointment",
            "idempotency_key": str(uuid.uuid4()),
            "moving": None,
        },
        status=status,
    )


def _found_context(base: str, search: Search, found: Found | None, refusal: str) -> dict[str, Any]:
    more = f"{base}?{search.query(page=found.next_page)}" if found and found.next_page else ""
    return {
        "search": search,
        "found": found,
        "errors": found.errors if found else {},
        "find_url": base,
        "more_url": more,
        "first_url": f"{base}?{search.first_page().query()}" if search.page else "",
        "messages": [{"level": "warning", "text": refusal_text(refusal)}] if refusal else [],
    }


@staff_page
async def book(request: web.Request, caller: Caller) -> web.StreamResponse:
    values = await form_text.checked(request)
    search = find_available.search_from(values)
    chosen = _chosen(values)
    pid = patient_id(request)
    if chosen is None or not search.type_id:
        found = await find_available.find(request, caller, search, zone(request), patient_id=pid)
        found.errors = {**found.errors, "slot": [CHOOSE_TIME]}
        return await _book_page(request, caller, search, found, status=400)
    provider_id, start = chosen
    try:
        await scheduling(request).BookAppointment(
            pb.BookAppointmentRequest(
                patient_id=pid,
                appointment_type_id=search.type_id,
                provider_id=provider_id,
                start=start,
                idempotency_key=values.get("idempotency_key", "")[:200],
            ),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        found, refusal = await _refused(request, caller, search, exc, pid)
        return await _book_page(request, caller, search, found, refusal=refusal, status=409)
    return redirect(request, f"/staff/patients/{pid}", flash="appointment-booked")


async def _refused(
    request: web.Request,
    caller: Caller,
    search: Search,
    exc: grpc.aio.AioRpcError,
    pid: str,
    moving: str = "",
) -> tuple[Found, str]:
    """The free times to offer after a refused booking or move (for patient `pid`), and the
    refusal's kind.

    With a provider chosen, only that provider's times: the alternatives' own, or (none of
    them being theirs) a fresh search of theirs, which says so when it finds none."""
    refusal = slot_refusal(exc)
    if refusal:
        slots = alternatives(exc)
        if search.provider_id:
            slots = [s for s in slots if s.provider_id == search.provider_id]
            if not slots:
                fresh = await find_available.find(
                    request, caller, search, zone(request), moving, pid
                )
                return fresh, refusal
        return Found(days=by_day(slots, zone(request))), refusal
    errors: FieldErrors | None = invalid(exc)
    if not_found_kind(exc) == "patient":  # the chart's patient: identity knows them
        errors = {"_form": [PATIENT_NOT_READY_TEXT]}
    if errors is None:
        if exc.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
            raise exc
        errors = {"_form": [exc.details() or "That time cannot be booked."]}
    found = await find_available.find(request, caller, search, zone(request), moving, pid)
    found.errors = {**found.errors, **errors}
    return found, ""


# --- Book from the calendar: choose the patient first ------------------------------------------


@staff_page
async def calendar_book(request: web.Request, caller: Caller) -> web.StreamResponse:
    return _picker(request, caller, query="", results=None)


@staff_page
async def calendar_book_search(request: web.Request, caller: Caller) -> web.StreamResponse:
    # The name is posted, never put in a URL (names are PHI; URLs end up in logs).
    query = (await form_text.checked(request)).get("query", "")
    if not query:
        errors = {"query": ["Enter a name, date of birth or chart number."]}
        return _picker(request, caller, query="", results=None, errors=errors)
    try:
        reply = await request.app[BACKENDS].identity.SearchPatients(
            idpb.SearchPatientsRequest(query=query, limit=20),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        found = invalid(exc)
        if found is None:
            raise
        return _picker(request, caller, query=query, results=None, errors=found)
    return _picker(request, caller, query=query, results=list(reply.items))


def _picker(
    request: web.Request,
    caller: Caller,
    *,
    query: str,
    results: list[idpb.PatientSummary] | None,
    errors: FieldErrors | None = None,
) -> web.Response:
    carried = {k: request.query.get(k, "") for k in ("provider", "from")}  # from the calendar
    then = urlencode({k: v for k, v in carried.items() if v})
    return practice_render(
        request,
        caller,
        "staff/calendar_book.html",
        {
            "query": query,
            "results": results,
            "errors": errors or {},
            "full_name": full_name,
            "then": f"?{then}" if then else "",
            "action": request.path_qs,
        },
        active_nav="calendar",
        status=400 if errors else 200,
    )


# --- One appointment ---------------------------------------------------------------------------


async def _appointment(request: web.Request, caller: Caller) -> pb.Appointment:
    try:
        found: pb.Appointment = await scheduling(request).GetAppointment(
            pb.GetAppointmentRequest(appointment_id=url_id(request, "appointment_id")),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        not_found_as_404(exc)
        raise
    return found


async def _patient(request: web.Request, caller: Caller, pid: str) -> idpb.Patient:
    patient: idpb.Patient = await request.app[BACKENDS].identity.GetPatient(
        idpb.GetPatientRequest(patient_id=pid), metadata=auth.metadata(request, caller)
    )
    return patient


@staff_page
async def detail(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _detail_page(request, caller, {})


async def _detail_page(
    request: web.Request,
    caller: Caller,
    errors: FieldErrors,
    *,
    reason: str = "",
    status: int = 200,
) -> web.Response:
    appointment = await _appointment(request, caller)
    patient = await _patient(request, caller, appointment.patient_id)
    view = appointment_view(appointment, zone(request))
    return render(
        request,
        caller,
        "staff/appointment.html",
        {
            **patient_context(patient),
            "appointment": view,
            "errors": errors,
            "reason": reason,
            "calendar_url": "/staff/practice/calendar?"
            + urlencode({"provider": view.provider_id, "date": view.when.day.isoformat()}),
        },
        status=status,
    )


def _refusal_errors(exc: grpc.aio.AioRpcError) -> FieldErrors:
    errors = invalid(exc)
    if errors is not None:
        return errors
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        return {"_form": [exc.details() or "This appointment cannot be changed now."]}
    not_found_as_404(exc)
    raise exc


@staff_page
async def cancel(request: web.Request, caller: Caller) -> web.StreamResponse:
    appointment_id = url_id(request, "appointment_id")
    reason = (await form_text.checked(request)).get("reason", "")
    try:
        await scheduling(request).CancelAppointment(
            pb.CancelAppointmentRequest(appointment_id=appointment_id, reason=reason),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        errors = _refusal_errors(exc)
        return await _detail_page(request, caller, errors, reason=reason, status=409)
    return redirect(request, f"{APPOINTMENTS}/{appointment_id}", flash="appointment-cancelled")


@staff_page
async def set_status(request: web.Request, caller: Caller) -> web.StreamResponse:
    appointment_id = url_id(request, "appointment_id")
    status = STATUS_ACTIONS.get((await form_text.checked(request)).get("status", ""))
    if status is None:
        return await _detail_page(request, caller, {"_form": ["Choose a status."]}, status=400)
    try:
        await scheduling(request).SetAppointmentStatus(
            pb.SetAppointmentStatusRequest(appointment_id=appointment_id, status=status),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        return await _detail_page(request, caller, _refusal_errors(exc), status=409)
    return redirect(request, f"{APPOINTMENTS}/{appointment_id}", flash="appointment-status")


# --- Reschedule: Find Available for the same type, then move ----------------------------------


@staff_page
async def reschedule_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    appointment = await _appointment(request, caller)
    search = _same_type(find_available.search_from(request.query), appointment)
    if appointment.status != pb.APPOINTMENT_STATUS_BOOKED:  # the page says it cannot move
        return await _reschedule_page(request, caller, appointment, search, None)
    found = await find_available.find(
        request, caller, search, zone(request), appointment.id, appointment.patient_id
    )
    return await _reschedule_page(request, caller, appointment, search, found)


def _same_type(search: Search, appointment: pb.Appointment) -> Search:
    return Search(
        type_id=appointment.appointment_type_id,
        provider_id=search.provider_id,
        from_date=search.from_date,
        page=search.page,
    )


async def _reschedule_page(
    request: web.Request,
    caller: Caller,
    appointment: pb.Appointment,
    search: Search,
    found: Found | None,
    *,
    refusal: str = "",
    status: int = 200,
) -> web.Response:
    patient, options = await asyncio.gather(
        _patient(request, caller, appointment.patient_id),
        _options(request, caller, appointment.appointment_type_id),
    )
    base = f"{APPOINTMENTS}/{appointment.id}/reschedule"
    return render(
        request,
        caller,
        "staff/appointment_book.html",
        {
            **patient_context(patient),
            **options,
            **_found_context(base, search, found, refusal),
            "confirm_url": base,
            "confirm_label": "Move appointment",
            "moving": appointment_view(appointment, zone(request)),
        },
        status=status,
    )


@staff_page
async def reschedule(request: web.Request, caller: Caller) -> web.StreamResponse:
    appointment = await _appointment(request, caller)
    values = await form_text.checked(request)
    search = _same_type(find_available.search_from(values), appointment)
    chosen = _chosen(values)
    if chosen is None:
        found = await find_available.find(
            request, caller, search, zone(request), appointment.id, appointment.patient_id
        )
        found.errors = {**found.errors, "slot": [CHOOSE_TIME]}
        return await _reschedule_page(request, caller, appointment, search, found, status=400)
    provider_id, start = chosen
    try:
        await scheduling(request).RescheduleAppointment(
            pb.RescheduleAppointmentRequest(
                appointment_id=appointment.id, provider_id=provider_id, start=start
            ),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        found, refusal = await _refused(
            request, caller, search, exc, appointment.patient_id, appointment.id
        )
        return await _reschedule_page(
            request, caller, appointment, search, found, refusal=refusal, status=409
        )
    return redirect(request, f"{APPOINTMENTS}/{appointment.id}", flash="appointment-rescheduled")


def setup(app: web.Application) -> None:
    one = APPOINTMENTS + "/{appointment_id}"
    app.router.add_get("/staff/practice/calendar/book", calendar_book)
    app.router.add_post("/staff/practice/calendar/book", calendar_book_search)
    app.router.add_get("/staff/patients/{patient_id}/appointments/book", book_form)
    app.router.add_post("/staff/patients/{patient_id}/appointments", book)
    app.router.add_get(one, detail)
    app.router.add_post(one + "/cancel", cancel)
    app.router.add_post(one + "/status", set_status)
    app.router.add_get(one + "/reschedule", reschedule_form)
    app.router.add_post(one + "/reschedule", reschedule)
