"""The portal's Appointments: Find Available, review, Confirm Appointment; the patient's own
appointments, cancel, reschedule and "Add to calendar".

The page never names a patient to scheduling: the service takes the patient from the signed
principal, lists only their appointments and answers NOT_FOUND (a 404 page here) for anyone
else's. Changes are POST → 303 → GET; a time taken meanwhile shows fresh alternatives.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp_jinja2
import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import auth, find_available, form_text, ics
from services.gateway.auth import Caller
from services.gateway.clinic_time import When, day_start, instant, long_day, parse_date, when
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.find_available import Found, Search
from services.gateway.patient import present
from services.gateway.patient.session import my_profile, portal_base, realm_of, signed_in
from services.gateway.patient.views import page_context
from services.gateway.schedule_view import (
    alternatives,
    appointment_view,
    by_day,
    parse_slot,
    refusal_text,
    slot_refusal,
)
from services.runtime.errors import FieldErrors, field_errors

NOTICES = {
    "booked": "Your appointment is booked.",
    "cancelled": "Your appointment has been cancelled.",
    "rescheduled": "Your appointment has been moved to the new time.",
}
CHOOSE_TIME = "Choose one of the times."
# An appointment of a type patients cannot book online (staff booked it): scheduling refuses
# the patient's move (NOT_BOOKABLE_ONLINE), so the pages do not offer one.
ONLY_THE_CLINIC_MOVES = "Only the clinic can move this appointment. Please call the clinic."


def _url(request: web.Request, path: str = "", **query: str) -> str:
    url = portal_base(realm_of(request)) + "appointments" + path
    pairs = {k: v for k, v in query.items() if v}
    return f"{url}?{urlencode(pairs)}" if pairs else url


def _appointment_id(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["appointment_id"]))
    except ValueError:
        raise web.HTTPNotFound() from None


def _zone(request: web.Request) -> tzinfo:
    return request.app[SETTINGS].clinic_timezone


async def _choices(
    request: web.Request, who: Caller
) -> tuple[list[pb.AppointmentType], list[pb.Provider]]:
    scheduling = request.app[BACKENDS].scheduling
    meta = auth.metadata(request, who)
    types, providers = await asyncio.gather(
        scheduling.ListAppointmentTypes(
            pb.ListAppointmentTypesRequest(bookable_online_only=True), metadata=meta
        ),
        scheduling.ListProviders(pb.ListProvidersRequest(), metadata=meta),
    )
    return list(types.items), list(providers.items)


async def _bookable_type_ids(request: web.Request, who: Caller) -> set[str]:
    """The types patients book online: only appointments of these may they move themselves."""
    types = await request.app[BACKENDS].scheduling.ListAppointmentTypes(
        pb.ListAppointmentTypesRequest(bookable_online_only=True),
        metadata=auth.metadata(request, who),
    )
    return {t.id for t in types.items}


def _options(
    types: list[pb.AppointmentType], providers: list[pb.Provider], type_id: str = ""
) -> dict[str, Any]:
    """The drop-downs; once the type is known, only the providers offering it."""
    kind = next((t for t in types if t.id == type_id), None)
    return {
        "type_options": [(t.id, t.name) for t in types],
        "provider_options": [
            (p.id, p.display_name) for p in providers if kind is None or p.id in kind.provider_ids
        ],
    }


async def _get(request: web.Request, who: Caller, appointment_id: str) -> pb.Appointment:
    try:
        found: pb.Appointment = await request.app[BACKENDS].scheduling.GetAppointment(
            pb.GetAppointmentRequest(appointment_id=appointment_id),
            metadata=auth.metadata(request, who),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise web.HTTPNotFound() from None
        raise
    return found


def _render(
    request: web.Request,
    who: Caller,
    profile: present.Profile,
    template: str,
    *,
    status: int = 200,
    messages: list[dict[str, str]] | None = None,
    **extra: Any,
) -> web.Response:
    context = page_context(request, who, profile, "appointments", **extra)
    notice = NOTICES.get(request.query.get("notice", ""))
    context["messages"] = ([{"level": "success", "text": notice}] if notice else []) + (
        messages or []
    )
    context["appointments_url"] = _url(request)
    return aiohttp_jinja2.render_template(template, request, context, status=status)


# --- The Appointments page: the search form and my appointments ------------------------------


async def index(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return await _index_page(request, who, Search(), {})


async def _index_page(
    request: web.Request, who: Caller, search: Search, errors: FieldErrors, status: int = 200
) -> web.Response:
    profile, (types, providers), mine = await asyncio.gather(
        my_profile(request, who),
        _choices(request, who),
        request.app[BACKENDS].scheduling.ListAppointments(
            pb.ListAppointmentsRequest(), metadata=auth.metadata(request, who)
        ),
    )
    views = [appointment_view(a, _zone(request)) for a in mine.items]
    upcoming = [a for a in views if a.upcoming]
    past = [a for a in reversed(views) if not a.upcoming]
    return _render(
        request,
        who,
        present.profile(profile),
        "patient/appointments.html",
        status=status,
        **_options(types, providers, search.type_id),
        search=search,
        errors=errors,
        upcoming=upcoming,
        past=past,
    )


# --- Find Available → review → Confirm Appointment --------------------------------------------


async def find(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    search = find_available.search_from(request.query)
    moving = request.query.get("reschedule", "")
    if moving:
        appointment = await _get(request, who, _id_or_404(moving))
        search = Search(
            type_id=appointment.appointment_type_id,
            provider_id=search.provider_id,
            from_date=search.from_date,
            page=search.page,
        )
    found = await find_available.find(request, who, search, _zone(request), moving)
    if moving and "type" in found.errors:
        # Scheduling offers patients no times of a type they cannot book online.
        errors = {"_form": [ONLY_THE_CLINIC_MOVES]}
        return await _detail_page(request, who, moving, errors=errors, status=409)
    if found.errors and not moving:
        return await _index_page(request, who, search, found.errors, status=400)
    return await _results_page(request, who, search, found, moving)


def _id_or_404(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise web.HTTPNotFound() from None


async def _results_page(
    request: web.Request,
    who: Caller,
    search: Search,
    found: Found,
    moving: str = "",
    *,
    refusal: str = "",
    status: int = 200,
) -> web.Response:
    profile, (types, providers) = await asyncio.gather(
        my_profile(request, who), _choices(request, who)
    )
    kind = next((t for t in types if t.id == search.type_id), None)
    more = ""
    if found.next_page:
        more = _url(request, "/find", **_search_query(search, found.next_page, moving))
    messages = [{"level": "warning", "text": refusal_text(refusal)}] if refusal else []
    no_times = ""
    if not found.days and not found.errors:
        no_times = _no_times(search, kind, providers, _zone(request))
    return _render(
        request,
        who,
        present.profile(profile),
        "patient/appointments_find.html",
        status=status,
        messages=messages,
        **_options(types, providers, search.type_id),
        search=search,
        type_name=kind.name if kind else "",
        found=found,
        no_times=no_times,
        errors=found.errors,
        more_url=more,
        first_url=_url(request, "/find", **_search_query(search, "", moving))
        if search.page
        else "",
        moving=moving,
    )


def _no_times(
    search: Search, kind: pb.AppointmentType | None, providers: list[pb.Provider], zone: tzinfo
) -> str:
    """Why nothing was found, as far as the page can tell, and what to try instead."""
    provider = next((p for p in providers if p.id == search.provider_id), None)
    who = f" with {provider.display_name}" if provider else ""
    if kind is not None and provider is not None and provider.id not in kind.provider_ids:
        return (
            f"{provider.display_name} does not offer {kind.name}. "
            "Choose another provider or any provider."
        )
    day = parse_date(search.from_date)
    horizon = kind.horizon_days if kind else 0
    if day is None:
        within = f" in the next {_count(horizon, 'day')}" if horizon else ""
        instead = "Try any provider, or contact the clinic." if provider else "Contact the clinic."
        return f"No free times were found{who}{within}. {instead}"
    if horizon and day_start(day, zone) >= datetime.now(UTC) + timedelta(days=horizon):
        return f"Times can be booked up to {_count(horizon, 'day')} ahead: choose an earlier date."
    return (
        f"No free times were found{who} from {long_day(day)}. "
        "Try another provider or an earlier date, or contact the clinic."
    )


def _search_query(search: Search, page: str, moving: str) -> dict[str, str]:
    return {
        "type": "" if moving else search.type_id,
        "provider": search.provider_id,
        "from": search.from_date,
        "page": page,
        "reschedule": moving,
    }


async def review(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    search = find_available.search_from(request.query)
    moving = request.query.get("reschedule", "")
    appointment = await _get(request, who, _id_or_404(moving)) if moving else None
    if appointment is not None:
        search = Search(type_id=appointment.appointment_type_id, provider_id=search.provider_id)
    chosen = parse_slot(request.query.get("slot", ""))
    if chosen is None:
        found = await find_available.find(request, who, search, _zone(request), moving)
        found.errors = {**found.errors, "slot": [CHOOSE_TIME]}
        return await _results_page(request, who, search, found, moving, status=400)
    profile, (types, providers) = await asyncio.gather(
        my_profile(request, who), _choices(request, who)
    )
    kind = next((t for t in types if t.id == search.type_id), None)
    provider = next((p for p in providers if p.id == chosen[0]), None)
    if kind is None or provider is None:
        raise web.HTTPNotFound()
    start = chosen[1]
    end = Timestamp()
    end.FromSeconds(start.seconds + kind.duration_minutes * 60)
    return _render(
        request,
        who,
        present.profile(profile),
        "patient/appointments_review.html",
        kind=kind,
        provider=provider,
        when=when(start, end, _zone(request)),
        slot=request.query.get("slot", ""),
        search=search,
        moving=appointment_view(appointment, _zone(request)) if appointment else None,
        idempotency_key=str(uuid.uuid4()),
        notice_hours=_hours(kind.cancellation_notice_minutes),
        # Booked inside the cancellation notice: from the start, not changeable online.
        too_late_to_change=instant(start) - timedelta(minutes=kind.cancellation_notice_minutes)
        <= datetime.now(UTC),
        back_url=_url(request, "/find", **_search_query(search, "", moving)),
    )


def _hours(minutes: int) -> str:
    if minutes % 1440 == 0 and minutes >= 1440:
        return _count(minutes // 1440, "day")
    if minutes % 60 == 0:
        return _count(minutes // 60, "hour")
    return f"{minutes} minutes"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" + ("s" if n != 1 else "")


async def book(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    form = await form_text.checked(request)
    search = Search(type_id=find_available.search_from({"type": str(form.get("type", ""))}).type_id)
    chosen = parse_slot(str(form.get("slot", "")))
    if chosen is None or not search.type_id:
        found = await find_available.find(request, who, search, _zone(request))
        found.errors = {**found.errors, "slot": [CHOOSE_TIME]}
        return await _results_page(request, who, search, found, status=400)
    provider_id, start = chosen
    try:
        booked = await request.app[BACKENDS].scheduling.BookAppointment(
            pb.BookAppointmentRequest(
                appointment_type_id=search.type_id,
                provider_id=provider_id,
                start=start,
                idempotency_key=str(form.get("idempotency_key", ""))[:200],
            ),
            metadata=auth.metadata(request, who),
        )
    except grpc.aio.AioRpcError as exc:
        return await _refused(request, who, search, exc)
    raise web.HTTPSeeOther(_url(request, f"/{booked.id}", notice="booked"))


async def _refused(
    request: web.Request, who: Caller, search: Search, exc: grpc.aio.AioRpcError, moving: str = ""
) -> web.Response:
    """A booking or move that did not happen: the free times again, never an error page."""
    refusal = slot_refusal(exc)
    if refusal:
        found = Found(days=by_day(alternatives(exc), _zone(request)))
        return await _results_page(request, who, search, found, moving, refusal=refusal, status=409)
    errors: FieldErrors
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        errors = {"_form": [m for ms in field_errors(exc).values() for m in ms]}
    elif exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
        errors = {"_form": [exc.details() or "That time cannot be booked. Please choose another."]}
    else:
        raise exc
    found = await find_available.find(request, who, search, _zone(request), moving)
    found.errors = {**found.errors, **errors}
    return await _results_page(request, who, search, found, moving, status=409)


# --- One appointment: details, cancel, reschedule, calendar file ------------------------------


async def detail(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return await _detail_page(request, who, _appointment_id(request))


async def _detail_page(
    request: web.Request,
    who: Caller,
    appointment_id: str,
    *,
    template: str = "patient/appointment.html",
    errors: FieldErrors | None = None,
    reason: str = "",
    status: int = 200,
) -> web.Response:
    appointment, profile, movable = await asyncio.gather(
        _get(request, who, appointment_id),
        my_profile(request, who),
        _bookable_type_ids(request, who),
    )
    view = appointment_view(appointment, _zone(request))
    until = view.cancellable_until
    return _render(
        request,
        who,
        present.profile(profile),
        template,
        status=status,
        appointment=view,
        cancellable_until=When(until.astimezone(_zone(request))) if until else None,
        errors=errors or {},
        reason=reason,
        appointment_url=_url(request, f"/{view.id}"),
        reschedule_url=_url(request, "/find", reschedule=view.id),
        movable=appointment.appointment_type_id in movable,
        ics_url=_url(request, f"/{view.id}/calendar.ics"),
    )


async def cancel_page(request: web.Request) -> web.StreamResponse:
    """Cancelling is a step of its own: the appointment again, a reason (optional), the button."""
    who = await signed_in(request)
    return await _detail_page(
        request, who, _appointment_id(request), template="patient/appointment_cancel.html"
    )


async def cancel(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    appointment_id = _appointment_id(request)
    reason = str((await form_text.checked(request)).get("reason", "")).strip()
    try:
        await request.app[BACKENDS].scheduling.CancelAppointment(
            pb.CancelAppointmentRequest(appointment_id=appointment_id, reason=reason),
            metadata=auth.metadata(request, who),
        )
    except grpc.aio.AioRpcError as exc:
        errors = _change_refused(exc)
        return await _detail_page(
            request,
            who,
            appointment_id,
            template="patient/appointment_cancel.html",
            errors=errors,
            reason=reason,
            status=_status(exc),
        )
    raise web.HTTPSeeOther(_url(request, notice="cancelled"))


def _change_refused(exc: grpc.aio.AioRpcError) -> FieldErrors:
    if exc.code() == grpc.StatusCode.NOT_FOUND:
        raise web.HTTPNotFound()
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return field_errors(exc) or {"_form": ["Please check what you entered."]}
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        return {"_form": [exc.details() or "This appointment can no longer be changed online."]}
    raise exc


def _status(exc: grpc.aio.AioRpcError) -> int:
    return 400 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 409


async def reschedule(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    appointment_id = _appointment_id(request)
    chosen = parse_slot(str((await form_text.checked(request)).get("slot", "")))
    if chosen is None:
        raise web.HTTPSeeOther(_url(request, "/find", reschedule=appointment_id))
    provider_id, start = chosen
    try:
        await request.app[BACKENDS].scheduling.RescheduleAppointment(
            pb.RescheduleAppointmentRequest(
                appointment_id=appointment_id, provider_id=provider_id, start=start
            ),
            metadata=auth.metadata(request, who),
        )
    except grpc.aio.AioRpcError as exc:
        if slot_refusal(exc):
            current = await _get(request, who, appointment_id)
            search = Search(type_id=current.appointment_type_id)
            return await _refused(request, who, search, exc, appointment_id)
        errors = _change_refused(exc)
        return await _detail_page(request, who, appointment_id, errors=errors, status=_status(exc))
    raise web.HTTPSeeOther(_url(request, f"/{appointment_id}", notice="rescheduled"))


async def calendar_file(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    appointment = await _get(request, who, _appointment_id(request))
    settings = request.app[SETTINGS]
    body = ics.appointment_ics(
        appointment, settings.clinic_name, urlsplit(settings.onsite_url).hostname or "portal"
    )
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="appointment.ics"'},
    )


def routes(base: str) -> list[web.RouteDef]:
    one = base + "/appointments/{appointment_id:[0-9a-fA-F-]{36}}"
    return [
        web.get(base + "/appointments", index, name="portal-appointments"),
        web.post(base + "/appointments", book),
        web.get(base + "/appointments/find", find),
        web.get(base + "/appointments/review", review),
        web.get(one, detail),
        web.get(one + "/cancel", cancel_page),
        web.post(one + "/cancel", cancel),
        web.post(one + "/reschedule", reschedule),
        web.get(one + "/calendar.ics", calendar_file),
    ]
