"""Practice → Providers: add, rename, deactivate; weekly hours, date overrides and time off.

Hours are typed as ranges, "09:00-12:30, 13:30-17:00" (several a day), read in the clinic's
time zone by scheduling, which validates them and answers field errors.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Mapping
from datetime import datetime, timedelta
from typing import Any

import grpc
from aiohttp import web

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import auth, form_text
from services.gateway.auth import Caller
from services.gateway.clinic_time import (
    DATE_ERROR,
    DATETIME_ERROR,
    SKIPPED_TIME,
    day_start,
    instant,
    long_day,
    parse_date,
    parse_local,
    skipped,
    timestamp,
    when,
)
from services.gateway.schedule_view import HOLDING
from services.gateway.staff.calendar import View
from services.gateway.staff.common import invalid, practice_render, redirect, set_up_by, staff_page
from services.gateway.staff.scheduling_common import (
    not_found_as_404,
    providers,
    scheduling,
    url_id,
    zone,
)
from services.gateway.staff_roles import AVAILABILITY, PRACTICE_SETUP
from services.runtime.errors import FieldErrors, precondition_failure

BASE = "/staff/practice/providers"
WEEKDAYS = [
    (pb.WEEKDAY_MONDAY, "monday", "Monday"),
    (pb.WEEKDAY_TUESDAY, "tuesday", "Tuesday"),
    (pb.WEEKDAY_WEDNESDAY, "wednesday", "Wednesday"),
    (pb.WEEKDAY_THURSDAY, "thursday", "Thursday"),
    (pb.WEEKDAY_FRIDAY, "friday", "Friday"),
    (pb.WEEKDAY_SATURDAY, "saturday", "Saturday"),
    (pb.WEEKDAY_SUNDAY, "sunday", "Sunday"),
]
RANGE = re.compile(r"^(\d{1,2}:\d{2})\s*(?:-|\u2013|to)\s*(\d{1,2}:\d{2})$")
RANGES_HINT = "Like 09:00-12:30, 13:30-17:00. Leave empty for a day off."
RANGE_ERROR = "Write each range as 09:00-12:30, separated by commas."


def parse_ranges(text: str) -> list[tuple[str, str]] | None:
    """'9:00-12:30, 13:30-17:00' → [('09:00', '12:30'), ...]; None when it does not read."""
    found = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = RANGE.match(part)
        if match is None:
            return None
        found.append((match[1].zfill(5), match[2].zfill(5)))
    return found


def refused_fields(
    exc: grpc.aio.AioRpcError, names: Mapping[str, str] | None = None
) -> FieldErrors | None:
    """Field messages of a refusal: invalid fields (`names` as for common.invalid), or a name
    another active provider has."""
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        kind, text = precondition_failure(exc)
        return {"display_name": [text]} if kind == "NAME_TAKEN" else None
    return invalid(exc, names)


def ranges_text(ranges: Any) -> str:
    return ", ".join(f"{r.start}-{r.end}" for r in ranges)


# --- The list ----------------------------------------------------------------------------------


@staff_page
async def index(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _index(request, caller, {}, {})


async def _index(
    request: web.Request, caller: Caller, values: Mapping[str, str], errors: FieldErrors
) -> web.Response:
    items = await providers(request, caller, include_inactive=True)
    return practice_render(
        request,
        caller,
        "staff/providers.html",
        {"providers": items, "values": values, "errors": errors},
        active_nav="providers",
        status=400 if errors else 200,
    )


@set_up_by(PRACTICE_SETUP)
async def add(request: web.Request, caller: Caller) -> web.StreamResponse:
    values = await form_text.checked(request)
    try:
        created = await scheduling(request).CreateProvider(
            pb.CreateProviderRequest(display_name=values.get("display_name", "")),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        errors = refused_fields(exc)
        if errors is None:
            raise
        return await _index(request, caller, values, errors)
    return redirect(request, f"{BASE}/{created.id}", flash="provider-added")


# --- One provider ----------------------------------------------------------------------------


@staff_page
async def detail(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _detail(request, caller, url_id(request, "provider_id"))


async def _detail(
    request: web.Request,
    caller: Caller,
    provider_id: str,
    *,
    values: Mapping[str, str] | None = None,
    errors: FieldErrors | None = None,
    form_name: str = "",
) -> web.Response:
    meta = auth.metadata(request, caller)
    stub = scheduling(request)
    try:
        hours = await stub.GetWorkingHours(
            pb.GetWorkingHoursRequest(provider_id=provider_id), metadata=meta
        )
        time_off = await stub.ListTimeOff(
            pb.ListTimeOffRequest(provider_id=provider_id), metadata=meta
        )
    except grpc.aio.AioRpcError as exc:
        not_found_as_404(exc)
        raise
    everyone = await providers(request, caller, include_inactive=True)
    provider = next((p for p in everyone if p.id == provider_id), None)
    if provider is None:
        raise web.HTTPNotFound()
    weekly = {
        key: ranges_text([r for r in hours.weekly if r.weekday == day]) for day, key, _ in WEEKDAYS
    }
    shown = dict(values or {})
    if form_name != "hours":
        shown.update({f"hours_{key}": text for key, text in weekly.items()})
    if form_name != "rename":
        shown["display_name"] = provider.display_name
    tz = zone(request)
    return practice_render(
        request,
        caller,
        "staff/provider.html",
        {
            "provider": provider,
            "weekdays": WEEKDAYS,
            "values": shown,
            "errors": errors or {},
            "form_name": form_name,
            "overrides": [
                {
                    "date": o.date,
                    "label": _day_label(o.date),
                    "hours": ranges_text(o.ranges) or "Closed",
                }
                for o in hours.date_overrides
            ],
            "time_off": [
                {"id": t.id, "when": when(t.start, t.end, tz), "reason": t.reason}
                for t in time_off.items
            ],
            "time_zone": hours.time_zone,
            "ranges_hint": RANGES_HINT,
        },
        active_nav="providers",
        status=400 if errors else 200,
    )


def _day_label(iso: str) -> str:
    day = parse_date(iso)
    return long_day(day) if day else iso


async def _change(
    request: web.Request,
    caller: Caller,
    form_name: str,
    flash: str,
    call: Awaitable[object] | None,
    values: Mapping[str, str],
    errors: FieldErrors | None = None,
    field_names: dict[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Await one change (None: the form was refused already; a change that answers a
    response, a redirect, goes there instead of back to the provider); field errors show on the
    provider's page beside the form that sent it, under that form's field names (the
    service's paths mapped by `field_names`), each message led by the field's entry in
    `labels` when it has one ("Tuesday: End must be after start.")."""
    provider_id = url_id(request, "provider_id")
    errors = dict(errors or {})
    if call is not None:
        try:
            answer = await call
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise web.HTTPNotFound() from None
            found = refused_fields(exc, field_names)
            if found is None:
                raise
            for key, messages in found.items():
                label = (labels or {}).get(key)
                shown = [f"{label}: {m}" for m in messages] if label else messages
                errors.setdefault(key, []).extend(shown)
        else:
            if isinstance(answer, web.Response):
                return answer
    if errors:
        return await _detail(
            request, caller, provider_id, values=values, errors=errors, form_name=form_name
        )
    return redirect(request, f"{BASE}/{provider_id}", flash=flash)


@set_up_by(PRACTICE_SETUP)
async def rename(request: web.Request, caller: Caller) -> web.StreamResponse:
    values = await form_text.checked(request)
    rpc = pb.RenameProviderRequest(
        provider_id=url_id(request, "provider_id"), display_name=values.get("display_name", "")
    )
    call = scheduling(request).RenameProvider(rpc, metadata=auth.metadata(request, caller))
    return await _change(request, caller, "rename", "provider-renamed", call, values)


@set_up_by(PRACTICE_SETUP)
async def confirm_deactivate(request: web.Request, caller: Caller) -> web.StreamResponse:
    """The confirmation step (a plain page, so it works without JavaScript)."""
    provider_id = url_id(request, "provider_id")
    everyone = await providers(request, caller, include_inactive=True)
    provider = next((p for p in everyone if p.id == provider_id), None)
    if provider is None:
        raise web.HTTPNotFound()
    if not provider.active:
        return redirect(request, f"{BASE}/{provider_id}")
    return practice_render(
        request,
        caller,
        "staff/provider_deactivate.html",
        {"provider": provider},
        active_nav="providers",
    )


@set_up_by(PRACTICE_SETUP)
async def deactivate(request: web.Request, caller: Caller) -> web.StreamResponse:
    rpc = pb.DeactivateProviderRequest(provider_id=url_id(request, "provider_id"))
    call = scheduling(request).DeactivateProvider(rpc, metadata=auth.metadata(request, caller))
    return await _change(request, caller, "rename", "provider-deactivated", call, {})


@set_up_by(PRACTICE_SETUP)
async def reactivate(request: web.Request, caller: Caller) -> web.StreamResponse:
    rpc = pb.ReactivateProviderRequest(provider_id=url_id(request, "provider_id"))
    call = scheduling(request).ReactivateProvider(rpc, metadata=auth.metadata(request, caller))
    return await _change(request, caller, "rename", "provider-reactivated", call, {})


@set_up_by(AVAILABILITY)
async def save_hours(request: web.Request, caller: Caller) -> web.StreamResponse:
    values = await form_text.checked(request)
    weekly: list[pb.WeeklyRange] = []
    errors: FieldErrors = {}
    names: dict[str, str] = {}
    labels = {f"hours_{key}": label for _, key, label in WEEKDAYS}
    for day, key, label in WEEKDAYS:
        parsed = parse_ranges(values.get(f"hours_{key}", ""))
        if parsed is None:
            errors[f"hours_{key}"] = [f"{label}: {RANGE_ERROR}"]
            continue
        for start, end in parsed:
            prefix = f"weekly[{len(weekly)}]"
            for path in (prefix, f"{prefix}.start", f"{prefix}.end", f"{prefix}.weekday"):
                names[path] = f"hours_{key}"
            weekly.append(pb.WeeklyRange(weekday=day, start=start, end=end))
    names["weekly"] = "_form"
    rpc = pb.ReplaceWorkingHoursRequest(provider_id=url_id(request, "provider_id"), weekly=weekly)
    call = (
        None
        if errors
        else scheduling(request).ReplaceWorkingHours(rpc, metadata=auth.metadata(request, caller))
    )
    return await _change(
        request, caller, "hours", "hours-saved", call, values, errors, names, labels
    )


@set_up_by(AVAILABILITY)
async def set_override(request: web.Request, caller: Caller) -> web.StreamResponse:
    values = await form_text.checked(request)
    parsed = parse_ranges(values.get("override_hours", ""))
    errors: FieldErrors = {}
    if parsed is None:
        errors["override_hours"] = [RANGE_ERROR]
    if parse_date(values.get("override_date", "")) is None:
        errors["override_date"] = [DATE_ERROR]
    rpc = pb.SetDateOverrideRequest(
        provider_id=url_id(request, "provider_id"),
        date=values.get("override_date", ""),
        ranges=[pb.TimeRange(start=s, end=e) for s, e in parsed or []],
    )
    call = (
        None
        if errors
        else scheduling(request).SetDateOverride(rpc, metadata=auth.metadata(request, caller))
    )
    names = {"date": "override_date", "ranges": "override_hours"}
    names.update({f"ranges[{i}]": "override_hours" for i in range(len(rpc.ranges))})
    names.update({f"ranges[{i}].start": "override_hours" for i in range(len(rpc.ranges))})
    names.update({f"ranges[{i}].end": "override_hours" for i in range(len(rpc.ranges))})
    labels = {"override_hours": "Hours that day"}
    return await _change(
        request, caller, "override", "override-saved", call, values, errors, names, labels
    )


@set_up_by(AVAILABILITY)
async def remove_override(request: web.Request, caller: Caller) -> web.StreamResponse:
    values = await form_text.checked(request)
    rpc = pb.RemoveDateOverrideRequest(
        provider_id=url_id(request, "provider_id"), date=values.get("date", "")
    )
    call = scheduling(request).RemoveDateOverride(rpc, metadata=auth.metadata(request, caller))
    return await _change(request, caller, "override", "override-removed", call, {})


@set_up_by(AVAILABILITY)
async def add_time_off(request: web.Request, caller: Caller) -> web.StreamResponse:
    values = await form_text.checked(request)
    tz = zone(request)
    start = parse_local(values.get("off_start", ""), tz)
    end = parse_local(values.get("off_end", ""), tz)
    errors: FieldErrors = {}
    if start is None:
        errors["off_start"] = [
            DATETIME_ERROR if values.get("off_start") else "Enter when the time off starts."
        ]
    if end is None:
        errors["off_end"] = [
            DATETIME_ERROR if values.get("off_end") else "Enter when the time off ends."
        ]
    elif start is not None and end <= start:
        errors["off_end"] = ["The end must be after the start."]
    for name, value in (("off_start", start), ("off_end", end)):
        if value is not None and skipped(value):
            errors.setdefault(name, []).append(SKIPPED_TIME)
    rpc = pb.AddTimeOffRequest(
        provider_id=url_id(request, "provider_id"), reason=values.get("off_reason", "")
    )
    if start is not None and end is not None:
        rpc.start.CopyFrom(timestamp(start))
        rpc.end.CopyFrom(timestamp(end))

    async def add(start: datetime, end: datetime) -> web.Response | None:
        """Time off cancels nothing: when appointments are booked in it, go to the provider's
        calendar at the first of them (the day, or the week when the time off spans days; not
        before the time off's first day), where they show beside the new time off, each a link
        to move or cancel it."""
        meta = auth.metadata(request, caller)
        await scheduling(request).AddTimeOff(rpc, metadata=meta)
        booked = pb.ListAppointmentsRequest(
            provider_id=rpc.provider_id, statuses=sorted(HOLDING), limit=1
        )
        getattr(booked, "from").CopyFrom(rpc.start)
        booked.to.CopyFrom(rpc.end)
        found = (await scheduling(request).ListAppointments(booked, metadata=meta)).items
        if not found:
            return None
        first = max(instant(found[0].start).astimezone(tz).date(), start.date())
        one_day = end <= day_start(start.date() + timedelta(days=1), tz)
        shown = View("day" if one_day else "week", rpc.provider_id, first)
        return redirect(request, shown.url(), flash="time-off-over-bookings")

    names = {"start": "off_start", "end": "off_end", "reason": "off_reason"}
    call = None if errors or start is None or end is None else add(start, end)
    return await _change(request, caller, "time-off", "time-off-added", call, values, errors, names)


@set_up_by(AVAILABILITY)
async def remove_time_off(request: web.Request, caller: Caller) -> web.StreamResponse:
    rpc = pb.RemoveTimeOffRequest(time_off_id=url_id(request, "time_off_id"))
    call = scheduling(request).RemoveTimeOff(rpc, metadata=auth.metadata(request, caller))
    return await _change(request, caller, "time-off", "time-off-removed", call, {})


def setup(app: web.Application) -> None:
    one = BASE + "/{provider_id}"
    app.router.add_get(BASE, index)
    app.router.add_post(BASE, add)
    app.router.add_get(one, detail)
    app.router.add_post(one + "/rename", rename)
    app.router.add_get(one + "/deactivate", confirm_deactivate)
    app.router.add_post(one + "/deactivate", deactivate)
    app.router.add_post(one + "/reactivate", reactivate)
    app.router.add_post(one + "/hours", save_hours)
    app.router.add_post(one + "/overrides", set_override)
    app.router.add_post(one + "/overrides/remove", remove_override)
    app.router.add_post(one + "/time-off", add_time_off)
    app.router.add_post(one + "/time-off/{time_off_id}/remove", remove_time_off)
