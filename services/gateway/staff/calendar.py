"""Practice → Calendar: a day or a week of one provider, or every provider side by side for a
day, with the appointments that hold time and the provider's time off, in the clinic's time zone.

Time off shows as a block of its own ("Time off", its times that day, the reason), and an
appointment booked in it says so; a day from today on says "Closed" (a date override closes it)
or "No hours" (no weekly hours that weekday, no override). Each provider shown costs one
ListTimeOff and one GetWorkingHours call, all in parallel (scheduling keeps overrides from
today on only, so past days carry no such note).

Patients show by name: one GetPatientSummaries call per page for everyone on it (identity
audits each patient read). A patient identity no longer knows keeps the short id.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from urllib.parse import urlencode

from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.clinic_time import (
    day_bounds,
    day_start,
    instant,
    long_day,
    parse_date,
    short_day,
    today,
    when,
)
from services.gateway.schedule_view import AppointmentView, appointment_view
from services.gateway.staff.common import patient_names, practice_render, staff_page
from services.gateway.staff.scheduling_common import (
    providers,
    scheduling,
    zone,
)

URL = "/staff/practice/calendar"
SHOWN = [
    pb.APPOINTMENT_STATUS_PENDING,
    pb.APPOINTMENT_STATUS_BOOKED,
    pb.APPOINTMENT_STATUS_ARRIVED,
    pb.APPOINTMENT_STATUS_CHECKED_IN,
    pb.APPOINTMENT_STATUS_FULFILLED,
    pb.APPOINTMENT_STATUS_NOSHOW,
]
VIEWS = [("day", "Day"), ("week", "Week")]


@dataclass(frozen=True)
class TimeOffView:
    """Time off as one day's column shows it: its clinic-local times within that day."""

    times: str  # "09:00 to 12:00 CET", "From 14:00 CET", "Until 12:00 CET" or "All day"
    reason: str


@dataclass(frozen=True)
class Column:
    key: str
    heading: str
    appointments: list[AppointmentView]
    time_off: list[TimeOffView]
    hours_note: str  # "Closed", "No hours" or ""


@dataclass(frozen=True)
class Schedule:
    """One provider's time off over the shown days, and their working hours."""

    time_off: list[pb.TimeOff]
    hours: pb.WorkingHours

    def off_on(self, day: date, tz: tzinfo) -> list[TimeOffView]:
        start, end = day_start(day, tz), day_start(day + timedelta(days=1), tz)
        shown = []
        for item in self.time_off:
            off = when(item.start, item.end, tz)
            off_end = off.end or off.start
            if off_end <= start or off.start >= end:
                continue
            if off.start <= start and off_end >= end:
                times = "All day"
            elif off.start <= start:
                times = f"Until {off_end:%H:%M %Z}"
            elif off_end >= end:
                times = f"From {off.start:%H:%M %Z}"
            else:
                times = off.time_text
            shown.append(TimeOffView(times, item.reason))
        return shown

    def during(self, appointment: AppointmentView) -> bool:
        start, end = appointment.when.start, appointment.when.end or appointment.when.start
        return any(instant(t.start) < end and start < instant(t.end) for t in self.time_off)

    def hours_note(self, day: date, tz: tzinfo) -> str:
        if day < today(tz):
            return ""
        for override in self.hours.date_overrides:
            if override.date == day.isoformat():
                return "" if override.ranges else "Closed"
        return "" if any(r.weekday == day.isoweekday() for r in self.hours.weekly) else "No hours"


NO_SCHEDULE = Schedule([], pb.WorkingHours())


@dataclass(frozen=True)
class View:
    kind: str  # "day" | "week"
    provider_id: str  # "" = every provider (day view only)
    day: date

    def url(self, **changes: str) -> str:
        pairs = {"view": self.kind, "provider": self.provider_id, "date": self.day.isoformat()}
        pairs.update(changes)
        return URL + "?" + urlencode({k: v for k, v in pairs.items() if v})

    @property
    def first(self) -> date:
        return self.day - timedelta(days=self.day.weekday()) if self.kind == "week" else self.day

    @property
    def days(self) -> int:
        return 7 if self.kind == "week" else 1


async def schedules(
    request: web.Request,
    caller: Caller,
    provider_ids: list[str],
    start: Timestamp,
    end: Timestamp,
    *,
    with_hours: bool,
) -> dict[str, Schedule]:
    """Each provider's time off between start and end and (`with_hours`: the view reaches today
    or later, where Schedule.hours_note says something) working hours, all in parallel."""
    meta = auth.metadata(request, caller)
    stub = scheduling(request)

    async def hours_of(provider_id: str) -> pb.WorkingHours:
        if not with_hours:
            return pb.WorkingHours()
        request = pb.GetWorkingHoursRequest(provider_id=provider_id)
        reply: pb.WorkingHours = await stub.GetWorkingHours(request, metadata=meta)
        return reply

    async def one(provider_id: str) -> Schedule:
        rpc = pb.ListTimeOffRequest(provider_id=provider_id, to=end)
        getattr(rpc, "from").CopyFrom(start)
        off, hours = await asyncio.gather(
            stub.ListTimeOff(rpc, metadata=meta), hours_of(provider_id)
        )
        return Schedule(list(off.items), hours)

    found = await asyncio.gather(*(one(p) for p in provider_ids))
    return dict(zip(provider_ids, found, strict=True))


def book_url(provider_id: str, earliest: date) -> str:
    """Book appointment from the calendar: its provider (if one) and day as the earliest date."""
    pairs = {"provider": provider_id, "from": earliest.isoformat()}
    return "/staff/practice/calendar/book?" + urlencode({k: v for k, v in pairs.items() if v})


@staff_page
async def calendar(request: web.Request, caller: Caller) -> web.StreamResponse:
    tz = zone(request)
    everyone = await providers(request, caller, include_inactive=True)
    active = [p for p in everyone if p.active]
    names = {p.id: p.display_name for p in everyone}
    q = request.query
    kind = q.get("view", "day") if q.get("view") in ("day", "week") else "day"
    provider_id = q.get("provider", "") if q.get("provider", "") in names else ""
    if kind == "week" and not provider_id and active:
        provider_id = active[0].id  # a week is one provider's
    view = View(kind, provider_id, parse_date(q.get("date", "")) or today(tz))
    start, end = day_bounds(view.first, view.days, tz)
    rpc = pb.ListAppointmentsRequest(provider_id=provider_id, to=end, statuses=SHOWN, limit=1000)
    getattr(rpc, "from").CopyFrom(start)
    reply = await scheduling(request).ListAppointments(rpc, metadata=auth.metadata(request, caller))
    items = [appointment_view(a, tz) for a in reply.items]
    if kind == "week":
        shown = [provider_id] if provider_id else []
    else:
        shown = [provider_id] if provider_id else [p.id for p in active]
        shown += [a.provider_id for a in items if a.provider_id not in shown]  # deactivated
        shown = list(dict.fromkeys(shown))
    patients, found = await asyncio.gather(
        patient_names(request, caller, [a.patient_id for a in items]),
        schedules(
            request,
            caller,
            shown,
            start,
            end,
            with_hours=view.first + timedelta(days=view.days) > today(tz),
        ),
    )

    def column(
        key: str, heading: str, provider: str, day: date, appointments: list[AppointmentView]
    ) -> Column:
        schedule = found.get(provider, NO_SCHEDULE)
        note = schedule.hours_note(day, tz) if provider else ""
        return Column(key, heading, appointments, schedule.off_on(day, tz), note)

    columns: list[Column]
    if kind == "week":
        days = [view.first + timedelta(days=i) for i in range(7)]
        columns = [
            column(
                d.isoformat(), short_day(d), provider_id, d, [a for a in items if a.when.day == d]
            )
            for d in days
        ]
    else:
        columns = [
            column(
                p, names.get(p, "Provider"), p, view.day, [a for a in items if a.provider_id == p]
            )
            for p in shown
        ]
    clashing = {
        a.id for a in items if a.holds_time and found.get(a.provider_id, NO_SCHEDULE).during(a)
    }
    step = timedelta(days=view.days)
    title = f"Week of {long_day(view.first)}" if kind == "week" else long_day(view.day)
    return practice_render(
        request,
        caller,
        "staff/calendar.html",
        {
            "view": view,
            "views": VIEWS,
            "title": title,
            "subject": names.get(provider_id, "All providers"),
            "columns": columns,
            "patient_names": patients,
            "during_time_off": clashing,
            # Deactivated providers too (after the active ones): their remaining appointments.
            "provider_options": [
                (p.id, p.display_name if p.active else f"{p.display_name} (inactive)")
                for p in sorted(everyone, key=lambda p: not p.active)
            ],
            "previous_url": view.url(date=(view.day - step).isoformat()),
            "next_url": view.url(date=(view.day + step).isoformat()),
            "today_url": view.url(date=today(tz).isoformat()),
            "book_url": book_url(provider_id, max(view.day, today(tz))),
            "time_zone": getattr(tz, "key", str(tz)),
        },
        active_nav="calendar",
    )


def setup(app: web.Application) -> None:
    app.router.add_get(URL, calendar)
