"""Practice → Appointment types: every rule of a type, the providers offering it, and whether
patients may book it in the portal. An empty number takes scheduling's default."""

from __future__ import annotations

from typing import Any

import grpc
from aiohttp import web

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import auth, form_text
from services.gateway.auth import Caller
from services.gateway.staff.common import (
    checked,
    invalid,
    practice_render,
    redirect,
    set_up_by,
    staff_page,
)
from services.gateway.staff.scheduling_common import (
    appointment_types,
    providers,
    scheduling,
    url_id,
)
from services.gateway.staff_roles import PRACTICE_SETUP
from services.runtime.errors import FieldErrors

BASE = "/staff/practice/appointment-types"
# (field, label, hint) of the numbers; the first is required, the others have defaults.
NUMBERS = [
    ("duration_minutes", "Duration (minutes)", "5 to 480."),
    (
        "slot_interval_minutes",
        "Slot interval (minutes)",
        "How far apart start times are. Empty: the duration.",
    ),
    (
        "buffer_before_minutes",
        "Buffer before (minutes)",
        "Kept free before each appointment. Empty: 0.",
    ),
    (
        "buffer_after_minutes",
        "Buffer after (minutes)",
        "Kept free after each appointment. Empty: 0.",
    ),
    (
        "minimum_notice_minutes",
        "Minimum notice (minutes)",
        "The soonest a time can be booked, from now. Empty: 60.",
    ),
    ("horizon_days", "Booking horizon (days)", "How far ahead times are offered. Empty: 90."),
    (
        "cancellation_notice_minutes",
        "Cancellation notice (minutes)",
        "Patients may cancel or move online until this long before. Empty: 1440 (24 hours).",
    ),
]


def minutes_text(minutes: int) -> str:
    """'45 min', '1 h 30 min', '24 h', '3 days' (whole days from two days on)."""
    if minutes >= 2 * 1440 and minutes % 1440 == 0:
        return f"{minutes // 1440} days"
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def values_of(kind: pb.AppointmentType) -> dict[str, Any]:
    values: dict[str, Any] = {name: str(getattr(kind, name)) for name, _, _ in NUMBERS}
    values.update(
        name=kind.name, bookable_online=kind.bookable_online, provider_ids=list(kind.provider_ids)
    )
    return values


def fields_from(values: dict[str, Any]) -> tuple[pb.AppointmentTypeFields, FieldErrors]:
    fields = pb.AppointmentTypeFields(
        name=values["name"],
        bookable_online=values["bookable_online"],
        provider_ids=values["provider_ids"],
    )
    errors: FieldErrors = {}
    for name, label, _ in NUMBERS:
        text = values.get(name, "")
        if not text and name != "duration_minutes":
            continue  # unset: the service's default
        try:
            setattr(fields, name, int(text))
        except ValueError:
            errors[name] = [
                f"{label} must be a whole number." if text else "Enter the duration in minutes."
            ]
        except OverflowError:
            errors[name] = [f"{label} is too large."]
    return fields, errors


async def posted(request: web.Request) -> dict[str, Any]:
    data = await form_text.checked(request)
    values: dict[str, Any] = {
        k: v.strip() for k, v in data.items() if isinstance(v, str) and k != "provider_ids"
    }
    values.setdefault("name", "")
    values["bookable_online"] = checked(values, "bookable_online")
    values["provider_ids"] = [str(v) for v in data.getall("provider_ids", []) if isinstance(v, str)]
    return values


@staff_page
async def index(request: web.Request, caller: Caller) -> web.StreamResponse:
    types = await appointment_types(request, caller)
    everyone = await providers(request, caller, include_inactive=True)
    names = {p.id: p.display_name for p in everyone}
    return practice_render(
        request,
        caller,
        "staff/appointment_types.html",
        {
            "types": types,
            "provider_names": names,
            "minutes_text": minutes_text,
            "active_ids": {p.id for p in everyone if p.active},
        },
        active_nav="types",
    )


async def _form_page(
    request: web.Request,
    caller: Caller,
    values: dict[str, Any],
    errors: FieldErrors,
    type_id: str = "",
) -> web.Response:
    everyone = await providers(request, caller, include_inactive=True)
    return practice_render(
        request,
        caller,
        "staff/appointment_type.html",
        {
            "values": values,
            "errors": errors,
            "numbers": NUMBERS,
            "providers": [p for p in everyone if p.active or p.id in values["provider_ids"]],
            "type_id": type_id,
            "action": f"{BASE}/{type_id}" if type_id else f"{BASE}/new",
        },
        active_nav="types",
        status=400 if errors else 200,
    )


@set_up_by(PRACTICE_SETUP)
async def new_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    blank = {"name": "", "bookable_online": True, "provider_ids": []}
    return await _form_page(request, caller, blank, {})


@set_up_by(PRACTICE_SETUP)
async def edit_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    type_id = url_id(request, "type_id")
    kind = next((t for t in await appointment_types(request, caller) if t.id == type_id), None)
    if kind is None:
        raise web.HTTPNotFound()
    return await _form_page(request, caller, values_of(kind), {}, type_id)


@set_up_by(PRACTICE_SETUP)
async def save(request: web.Request, caller: Caller) -> web.StreamResponse:
    type_id = url_id(request, "type_id") if "type_id" in request.match_info else ""
    values = await posted(request)
    fields, errors = fields_from(values)
    if errors:
        return await _form_page(request, caller, values, errors, type_id)
    meta = auth.metadata(request, caller)
    try:
        if type_id:
            await scheduling(request).UpdateAppointmentType(
                pb.UpdateAppointmentTypeRequest(appointment_type_id=type_id, fields=fields),
                metadata=meta,
            )
        else:
            await scheduling(request).CreateAppointmentType(
                pb.CreateAppointmentTypeRequest(fields=fields), metadata=meta
            )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        found = invalid(exc)
        if found is None:
            raise
        return await _form_page(request, caller, values, found, type_id)
    return redirect(request, BASE, flash="type-saved")


def setup(app: web.Application) -> None:
    app.router.add_get(BASE, index)
    app.router.add_get(BASE + "/new", new_form)
    app.router.add_post(BASE + "/new", save)
    app.router.add_get(BASE + "/{type_id}", edit_form)
    app.router.add_post(BASE + "/{type_id}", save)
