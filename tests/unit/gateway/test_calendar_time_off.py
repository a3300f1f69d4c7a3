"""The calendar's time off, per day's column: its clinic-local times within that day (a
multi-day time off is "From", "All day", then "Until"), across a daylight-saving change; an
appointment in it is marked; a day from today on says "Closed" or "No hours"."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway.clinic_time import timestamp, today, when
from services.gateway.schedule_view import AppointmentView
from services.gateway.staff.calendar import Schedule, TimeOffView

BERLIN = ZoneInfo("Europe/Berlin")
SPRING = date(2030, 3, 31)  # Europe/Berlin goes from CET to CEST at 02:00


def off(start: datetime, end: datetime, reason: str = "") -> pb.TimeOff:
    return pb.TimeOff(start=timestamp(start), end=timestamp(end), reason=reason)


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN)


def appointment(start: datetime, minutes: int) -> AppointmentView:
    return AppointmentView(
        id="a",
        patient_id="p",
        provider_id="d",
        provider_name="",
        type_name="",
        status=pb.APPOINTMENT_STATUS_BOOKED,
        when=when(timestamp(start), timestamp(start + timedelta(minutes=minutes)), BERLIN),
        cancellable_until=None,
        cancellation_reason="",
    )


def test_time_off_shows_its_times_within_each_day() -> None:
    first = SPRING - timedelta(days=1)
    schedule = Schedule(
        [
            off(local(first, 9), local(first, 12), "Training"),
            off(local(first, 14), local(SPRING + timedelta(days=1), 11, 30), "Holiday"),
        ],
        pb.WorkingHours(),
    )
    assert schedule.off_on(first, BERLIN) == [
        TimeOffView("09:00 to 12:00 CET", "Training"),
        TimeOffView("From 14:00 CET", "Holiday"),
    ]
    assert schedule.off_on(SPRING, BERLIN) == [TimeOffView("All day", "Holiday")]
    assert schedule.off_on(SPRING + timedelta(days=1), BERLIN) == [
        TimeOffView("Until 11:30 CEST", "Holiday")
    ]
    assert schedule.off_on(SPRING + timedelta(days=2), BERLIN) == []
    assert schedule.off_on(first - timedelta(days=1), BERLIN) == []


def test_across_the_clock_change_and_up_to_midnight() -> None:
    schedule = Schedule(
        [off(local(SPRING, 1), local(SPRING + timedelta(days=1), 0))], pb.WorkingHours()
    )
    assert schedule.off_on(SPRING, BERLIN) == [TimeOffView("From 01:00 CET", "")]
    assert schedule.off_on(SPRING + timedelta(days=1), BERLIN) == []
    short = Schedule([off(local(SPRING, 1), local(SPRING, 4))], pb.WorkingHours())
    assert short.off_on(SPRING, BERLIN) == [TimeOffView("01:00 CET to 04:00 CEST", "")]


def test_an_appointment_overlapping_time_off_is_during_it_one_touching_it_is_not() -> None:
    schedule = Schedule([off(local(SPRING, 9), local(SPRING, 12))], pb.WorkingHours())
    assert schedule.during(appointment(local(SPRING, 11, 30), 60))
    assert schedule.during(appointment(local(SPRING, 8, 30), 60))
    assert not schedule.during(appointment(local(SPRING, 12), 30))
    assert not schedule.during(appointment(local(SPRING, 8, 30), 30))


def test_days_from_today_say_closed_or_no_hours() -> None:
    now = today(BERLIN)
    monday = now + timedelta(days=7 - now.weekday())
    hours = pb.WorkingHours(
        weekly=[pb.WeeklyRange(weekday=pb.WEEKDAY_MONDAY, start="09:00", end="17:00")],
        date_overrides=[
            pb.DateOverride(date=(monday + timedelta(days=7)).isoformat()),  # closed
            pb.DateOverride(
                date=(monday + timedelta(days=1)).isoformat(),
                ranges=[pb.TimeRange(start="09:00", end="12:00")],
            ),
        ],
    )
    schedule = Schedule([], hours)
    assert schedule.hours_note(monday, BERLIN) == ""
    assert schedule.hours_note(monday + timedelta(days=1), BERLIN) == ""  # extra hours
    assert schedule.hours_note(monday + timedelta(days=2), BERLIN) == "No hours"
    assert schedule.hours_note(monday + timedelta(days=7), BERLIN) == "Closed"
    # Scheduling keeps no past overrides: a past day says nothing rather than guess.
    assert schedule.hours_note(now - timedelta(days=1), BERLIN) == ""
