"""Times as the clinic reads them: days, clock times and ranges in PORTAL_CLINIC_TIMEZONE.

Scheduling keeps instants (UTC timestamps); pages show and read them in the clinic's zone. Local
days are built with zoneinfo, so a day that gains or loses an hour (DST) keeps its real length.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from google.protobuf.timestamp_pb2 import Timestamp


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def instant(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def day_start(day: date, zone: tzinfo) -> datetime:
    """Local midnight of `day` (the first instant of it, even on a DST change)."""
    return datetime.combine(day, time(0), tzinfo=zone)


def day_bounds(first: date, days: int, zone: tzinfo) -> tuple[Timestamp, Timestamp]:
    """From the start of `first` to the start of the day `days` later, as instants."""
    return timestamp(day_start(first, zone)), timestamp(day_start(first + timedelta(days), zone))


def today(zone: tzinfo) -> date:
    return datetime.now(zone).date()


# The years a typed or linked date may name: those of the API's instants (scheduling_models.
# INSTANT_PATTERN). Beyond any horizon, and far from the ends of Python's dates, so a day's
# bounds in any zone are always instants.
FIRST_YEAR, LAST_YEAR = 1970, 2199
DATE_ERROR = f"Enter a date from {FIRST_YEAR} to {LAST_YEAR}, like 2026-03-02."
DATETIME_ERROR = f"Enter a date from {FIRST_YEAR} to {LAST_YEAR} and a time, like 2026-03-02 09:30."


def in_range(day: date) -> bool:
    return FIRST_YEAR <= day.year <= LAST_YEAR


def parse_date(text: str) -> date | None:
    """'2026-03-02'; None when it does not read or lies outside FIRST_YEAR-LAST_YEAR."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        return None
    return day if in_range(day) else None


def parse_local(text: str, zone: tzinfo) -> datetime | None:
    """'2026-03-02T09:30' (a datetime-local input) read in the clinic's zone; None when it does
    not read, names a zone, or lies outside FIRST_YEAR-LAST_YEAR."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if value.tzinfo is not None or not in_range(value.date()):
        return None
    return value.replace(tzinfo=zone)


def skipped(value: datetime) -> bool:
    """Whether a clinic-local wall time does not exist: the clocks jumped over it that day
    (02:30 on the spring-forward night in Europe/Berlin)."""
    there_and_back = value.astimezone(UTC).astimezone(value.tzinfo)
    return there_and_back.replace(tzinfo=None) != value.replace(tzinfo=None)


SKIPPED_TIME = "The clocks go forward over this time that day, so it does not exist. Enter another."


def day_month_year(day: date) -> str:
    """'2 March 2026': how every page and letter writes a date."""
    return f"{day.day} {day:%B %Y}"


def long_day(day: date) -> str:
    """'Monday, 2 March 2026'."""
    return f"{day:%A}, {day_month_year(day)}"


def short_day(day: date) -> str:
    """'Mon 2 Mar'."""
    return f"{day:%a} {day.day} {day:%b}"


@dataclass(frozen=True)
class When:
    """One instant or range as a page shows it, in the clinic's zone."""

    start: datetime  # clinic-local
    end: datetime | None = None

    @property
    def day(self) -> date:
        return self.start.date()

    @property
    def day_text(self) -> str:
        return long_day(self.start.date())

    @property
    def time_text(self) -> str:
        """'09:20 EST' or '09:20 to 10:00 EST', with the zone's abbreviation; a range across a
        daylight-saving change names both ('01:30 CET to 03:00 CEST')."""
        start = f"{self.start:%H:%M %Z}"
        if self.end is None:
            return start
        if f"{self.end:%Z}" != f"{self.start:%Z}":
            return f"{start} to {self.end:%H:%M %Z}"
        return f"{self.start:%H:%M} to {self.end:%H:%M %Z}"

    @property
    def text(self) -> str:
        return f"{self.day_text}, {self.time_text}"

    @property
    def iso(self) -> str:
        """For <time datetime="…">."""
        return self.start.isoformat(timespec="minutes")


def when(start: Timestamp, end: Timestamp | None, zone: tzinfo) -> When:
    return When(
        start=instant(start).astimezone(zone),
        end=instant(end).astimezone(zone) if end is not None else None,
    )
