"""Practice → Calendar: a day or a week of one provider, or every provider side by side for a
day, with the appointments that hold time, in the clinic's time zone.

Patients show by name: one GetPatientSummaries call per page for everyone on it (identity
audits each patient read). A patient identity no longer knows keeps the short id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlencode

from aiohttp import web

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.clinic_time import day_bounds, long_day, parse_date, short_day, today
from services.gateway.schedule_view import AppointmentView, appointment_view
from services.gateway.staff.common import patient_names, staff_page
from services.gateway.staff.scheduling_common import (
    practice_render,
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
class Column:
    key: str
    heading: str
    appointments: list[AppointmentView]


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
    patients = await patient_names(request, caller, [a.patient_id for a in items])
    columns: list[Column]
    if kind == "week":
        columns = [
            Column(
                d.isoformat(),
                short_day(d),
                [a for a in items if a.when.day == d],
            )
            for d in (view.first + timedelta(days=i) for i in range(7))
        ]
    else:
        shown = [provider_id] if provider_id else [p.id for p in active]
        shown += [a.provider_id for a in items if a.provider_id not in shown]  # deactivated
        shown = list(dict.fromkeys(shown))
        columns = [
            Column(p, names.get(p, "Provider"), [a for a in items if a.provider_id == p])
            for p in shown
        ]
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
