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


def parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def parse_local(text: str, zone: tzinfo) -> datetime | None:
    """'2026-03-02T09:30' (a datetime-local input) read in the clinic's zone."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if value.tzinfo is not None:
        return None
    return value.replace(tzinfo=zone)


def long_day(day: date) -> str:
    """'Monday, 2 March 2026'."""
    return f"{day:%A}, {day.day} {day:%B %Y}"


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
        """'09:20' or '09:20 to 10:00', with the zone's abbreviation (e.g. 'EST')."""
        text = f"{self.start:%H:%M}"
        if self.end is not None:
            text += f" to {self.end:%H:%M}"
        return f"{text} {self.start:%Z}"

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
