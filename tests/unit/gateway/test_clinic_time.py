"""Clinic time as the pages read and show it: typed dates stay within the years whose days are
instants in any zone, and a range across a daylight-saving change names both zones."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from services.gateway.clinic_time import When, day_bounds, parse_date, parse_local, skipped
from services.gateway.staff.appointment_types import minutes_text
from services.scheduling import catalog

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize("text", ["0001-01-01", "9999-12-31", "1969-12-31", "2200-01-01"])
def test_dates_outside_the_years_scheduling_takes_do_not_read(text: str) -> None:
    assert parse_date(text) is None
    assert parse_local(f"{text}T00:00", BERLIN) is None
    assert catalog.parse_date(text) is None


@pytest.mark.parametrize("text", ["1970-01-01", "2199-12-31"])
def test_the_first_and_last_days_have_instants_in_any_zone(text: str) -> None:
    day = parse_date(text)
    assert day is not None and catalog.parse_date(text) == day
    for zone in (BERLIN, NEW_YORK, ZoneInfo("Pacific/Kiritimati")):
        start, end = day_bounds(day, 7, zone)  # a week from either end: no OverflowError
        assert end.seconds > start.seconds
    assert parse_local(f"{text}T23:30", NEW_YORK) is not None


def test_a_range_across_a_dst_change_names_both_zones() -> None:
    # 28 March 2027: Berlin's clocks go from 02:00 CET to 03:00 CEST.
    start = datetime(2027, 3, 28, 0, 30, tzinfo=UTC).astimezone(BERLIN)
    end = datetime(2027, 3, 28, 1, 0, tzinfo=UTC).astimezone(BERLIN)
    assert When(start, end).time_text == "01:30 CET to 03:00 CEST"
    same = When(start, datetime(2027, 3, 28, 0, 50, tzinfo=UTC).astimezone(BERLIN))
    assert same.time_text == "01:30 to 01:50 CET"
    assert When(start).time_text == "01:30 CET"


@pytest.mark.parametrize(
    ("minutes", "text"),
    [
        (0, "0 min"),
        (45, "45 min"),
        (60, "1 h"),
        (90, "1 h 30 min"),
        (1440, "24 h"),
        (1500, "25 h"),
        (2880, "2 days"),
        (43200, "30 days"),
        (2900, "48 h 20 min"),
    ],
)
def test_minutes_read_as_hours_or_days_where_whole(minutes: int, text: str) -> None:
    assert minutes_text(minutes) == text


def test_a_date_override_of_year_9999_is_refused_by_the_service_rule() -> None:
    assert catalog.parse_date("9999-12-31") is None
    assert catalog.parse_date("2026-03-29") == date(2026, 3, 29)


def test_a_wall_time_the_clocks_jump_over_is_skipped() -> None:
    # 28 March 2027: Berlin's clocks go from 02:00 to 03:00; 31 October: 03:00 back to 02:00.
    assert skipped(datetime(2027, 3, 28, 2, 30, tzinfo=BERLIN))
    assert not skipped(datetime(2027, 3, 28, 3, 0, tzinfo=BERLIN))
    assert not skipped(datetime(2027, 3, 28, 1, 59, tzinfo=BERLIN))
    assert not skipped(datetime(2027, 10, 31, 2, 30, tzinfo=BERLIN))  # twice, but it exists
