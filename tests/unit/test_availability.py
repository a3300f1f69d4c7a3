"""The availability engine: properties over random schedules, and daylight-saving days."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scheduling.availability import (
    Calendar,
    FreeSlot,
    Rules,
    find_slots,
    fits,
    instant,
    local_date,
    merge,
    offers,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# Days with a daylight-saving change (and their neighbours) are where engines go wrong.
DST_DAYS = [
    date(2026, 3, 29),  # Berlin spring forward
    date(2026, 10, 25),  # Berlin fall back
    date(2026, 3, 8),  # New York spring forward
    date(2026, 11, 1),  # New York fall back
]
ZONES = st.sampled_from([BERLIN, NEW_YORK, ZoneInfo("UTC")])


def utc(year: int, month: int, day: int, hour: int) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


@st.composite
def day_ranges(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Up to three ranges of a day in 5-minute steps, possibly overlapping or touching."""
    found = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(0, 287)) * 5
        end = draw(st.integers(start // 5 + 1, 288)) * 5
        found.append((start, end))
    return found


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Calendar], Rules, ZoneInfo, int, int]:
    tz = draw(ZONES)
    first_day = draw(st.sampled_from(DST_DAYS)) - timedelta(days=draw(st.integers(0, 2)))
    base = instant(first_day, 0, tz)
    calendars = []
    for n in range(draw(st.integers(1, 3))):
        weekly = {weekday: draw(day_ranges()) for weekday in range(1, 8)}
        overrides = {
            first_day + timedelta(days=draw(st.integers(0, 4))): draw(day_ranges())
            for _ in range(draw(st.integers(0, 2)))
        }
        busy = []
        for _ in range(draw(st.integers(0, 12))):
            start = base + draw(st.integers(-3600, 5 * 86400))
            busy.append((start, start + draw(st.integers(60, 6 * 3600))))
        calendars.append(Calendar(f"p{n}", weekly, overrides, busy))
    rules = Rules.from_minutes(
        duration=draw(st.sampled_from([10, 15, 20, 30, 40, 60])),
        interval=draw(st.sampled_from([5, 10, 15, 20, 30, 60])),
        buffer_before=draw(st.sampled_from([0, 5, 10])),
        buffer_after=draw(st.sampled_from([0, 5, 15])),
    )
    earliest = base + draw(st.integers(0, 86400))
    latest = earliest + draw(st.integers(3600, 4 * 86400))
    return calendars, rules, tz, earliest, latest


def inside_hours(cal: Calendar, tz: ZoneInfo, start: int, end: int) -> bool:
    """Checked from local wall-clock times, independently of the engine's instants."""
    local_start = datetime.fromtimestamp(start, UTC).astimezone(tz)
    day = local_start.date()
    for first, last in merge(cal.ranges_on(day)):
        range_start = datetime.combine(day, datetime.min.time(), tz) + timedelta(minutes=first)
        range_end_day = day + timedelta(days=last // 1440)
        range_end = datetime.combine(range_end_day, datetime.min.time(), tz) + timedelta(
            minutes=last % 1440
        )
        if range_start.timestamp() <= start and end <= range_end.timestamp():
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_slots_are_free_inside_hours_on_the_grid_and_in_the_window(scenario) -> None:
    calendars, rules, tz, earliest, latest = scenario
    slots = find_slots(calendars, rules, tz, earliest=earliest, latest=latest, limit=10_000)
    by_id = {c.provider_id: c for c in calendars}
    assert slots == sorted(set(slots))
    for slot in slots:
        cal = by_id[slot.provider_id]
        assert earliest <= slot.start < latest
        assert slot.end - slot.start == rules.duration
        assert inside_hours(cal, tz, slot.start, slot.end)
        blocked_from, blocked_to = rules.blocked(slot.start)
        assert all(b_end <= blocked_from or blocked_to <= b_start for b_start, b_end in cal.busy)
        # On the grid of its range's start.
        day = local_date(slot.start, tz)
        assert any(
            (slot.start - instant(day, first, tz)) % rules.interval == 0
            for first, _ in merge(cal.ranges_on(day))
        )
        assert offers(cal, rules, tz, slot.start, earliest=earliest, latest=latest)
        assert fits(cal, rules, tz, slot.start)


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.integers(1, 7))
def test_pages_follow_each_other_without_gaps_or_repeats(scenario, page) -> None:
    calendars, rules, tz, earliest, latest = scenario
    everything = find_slots(calendars, rules, tz, earliest=earliest, latest=latest, limit=10_000)
    paged: list[FreeSlot] = []
    after = None
    while True:
        chunk = find_slots(
            calendars, rules, tz, earliest=earliest, latest=latest, limit=page, after=after
        )
        paged += chunk
        if len(chunk) < page:
            break
        after = (chunk[-1].start, chunk[-1].provider_id)
    assert paged == everything


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_every_free_grid_time_is_offered(scenario) -> None:
    """Completeness: a grid start that fits and is clear of busy time is never missed."""
    calendars, rules, tz, earliest, latest = scenario
    offered = {
        (s.start, s.provider_id)
        for s in find_slots(calendars, rules, tz, earliest=earliest, latest=latest, limit=10_000)
    }
    for cal in calendars:
        day = local_date(earliest, tz)
        while day <= local_date(latest, tz):
            for first, last in merge(cal.ranges_on(day)):
                start, end = instant(day, first, tz), instant(day, last, tz)
                for t in range(start, end - rules.duration + 1, rules.interval):
                    lo, hi = rules.blocked(t)
                    free = all(b_end <= lo or hi <= b_start for b_start, b_end in cal.busy)
                    if earliest <= t < latest and free:
                        assert (t, cal.provider_id) in offered
            day += timedelta(days=1)


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.data())
def test_the_patients_own_appointments_only_take_away_the_times_they_overlap(
    scenario, data
) -> None:
    """A patient's own appointments remove exactly the slots whose own time (not the provider's
    buffers) overlaps one, whichever provider; paging still neither skips nor repeats."""
    calendars, rules, tz, earliest, latest = scenario
    own = [
        (start, start + data.draw(st.integers(5, 120)) * 60)
        for start in data.draw(
            st.lists(st.integers(earliest - 3600, latest).map(lambda t: t - t % 300), max_size=4)
        )
    ]
    everything = find_slots(calendars, rules, tz, earliest=earliest, latest=latest, limit=10_000)
    expected = [s for s in everything if all(s.end <= lo or hi <= s.start for lo, hi in own)]
    found = find_slots(
        calendars, rules, tz, earliest=earliest, latest=latest, limit=10_000, patient_busy=own
    )
    assert found == expected
    page = data.draw(st.integers(1, 7))
    paged: list[FreeSlot] = []
    after = None
    while True:
        chunk = find_slots(
            calendars,
            rules,
            tz,
            earliest=earliest,
            latest=latest,
            limit=page,
            after=after,
            patient_busy=own,
        )
        paged += chunk
        if len(chunk) < page:
            break
        after = (chunk[-1].start, chunk[-1].provider_id)
    assert paged == expected


def hourly(tz: ZoneInfo, day: date, first: int, last: int) -> list[int]:
    cal = Calendar("p", {day.isoweekday(): [(first, last)]})
    start, end = instant(day, 0, tz) - 86400, instant(day, 0, tz) + 2 * 86400
    rules = Rules.from_minutes(60, 60)
    return [s.start for s in find_slots([cal], rules, tz, earliest=start, latest=end, limit=100)]


def test_spring_forward_day_has_real_hours_only() -> None:
    # Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST; 00:00-06:00 holds five real hours.
    starts = hourly(BERLIN, date(2026, 3, 29), 0, 360)
    assert starts == [utc(2026, 3, 28, 23) + h * 3600 for h in range(5)]
    assert [datetime.fromtimestamp(s, BERLIN).hour for s in starts] == [0, 1, 3, 4, 5]
    # New York 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    starts = hourly(NEW_YORK, date(2026, 3, 8), 0, 360)
    assert [datetime.fromtimestamp(s, NEW_YORK).hour for s in starts] == [0, 1, 3, 4, 5]


def test_fall_back_day_has_the_repeated_hour() -> None:
    # Berlin 2026-10-25: 03:00 CEST falls back to 02:00 CET; 00:00-06:00 holds seven real hours.
    starts = hourly(BERLIN, date(2026, 10, 25), 0, 360)
    assert len(starts) == 7 and starts[0] == utc(2026, 10, 24, 22)
    assert all(b - a == 3600 for a, b in itertools.pairwise(starts))
    starts = hourly(NEW_YORK, date(2026, 11, 1), 0, 360)
    assert [datetime.fromtimestamp(s, NEW_YORK).hour for s in starts] == [0, 1, 1, 2, 3, 4, 5]


def test_office_hours_keep_their_local_time_across_the_change() -> None:
    for tz, change in ((BERLIN, date(2026, 3, 29)), (NEW_YORK, date(2026, 11, 1))):
        weekly = {d: [(9 * 60, 10 * 60)] for d in range(1, 8)}
        cal = Calendar("p", weekly)
        earliest = instant(change, 0, tz) - 2 * 86400
        slots = find_slots(
            [cal],
            Rules.from_minutes(60, 60),
            tz,
            earliest=earliest,
            latest=earliest + 5 * 86400,
            limit=10,
        )
        local = [datetime.fromtimestamp(s.start, tz) for s in slots]
        assert [t.hour for t in local] == [9] * 5
        assert [t.date() for t in local] == [change + timedelta(days=k) for k in range(-2, 3)]


def test_minimum_notice_horizon_buffers_and_overrides() -> None:
    tz = BERLIN
    monday = date(2026, 6, 1)
    weekly = {d: [(9 * 60, 12 * 60)] for d in range(1, 6)}
    booked = (instant(monday, 10 * 60, tz), instant(monday, 10 * 60 + 30, tz))
    cal = Calendar("p", weekly, {monday + timedelta(days=1): []}, busy=[booked])
    rules = Rules.from_minutes(30, 30, buffer_before=10, buffer_after=10)
    # "now" is 09:05 with 20 minutes' notice: 09:30 is the first candidate.
    earliest = instant(monday, 9 * 60 + 25, tz)
    latest = instant(monday + timedelta(days=2), 10 * 60, tz)
    slots = find_slots([cal], rules, tz, earliest=earliest, latest=latest, limit=50)
    local = [datetime.fromtimestamp(s.start, tz).strftime("%a %H:%M") for s in slots]
    # 09:30 ends 10:00 + 10 min buffer, overlapping the 10:00 booking; 10:30 starts inside the
    # booking's end + 10 min before-buffer; Tuesday is closed by its override; the horizon stops
    # Wednesday before 10:00.
    assert local == ["Mon 11:00", "Mon 11:30", "Wed 09:00", "Wed 09:30"]


def test_staff_fit_is_off_grid_but_inside_hours() -> None:
    day = date(2026, 6, 1)
    cal = Calendar("p", {1: [(9 * 60, 12 * 60)]}, busy=[(instant(day, 660, BERLIN), 10**10)])
    rules = Rules.from_minutes(30, 30)
    assert fits(cal, rules, BERLIN, instant(day, 9 * 60 + 7, BERLIN))
    assert not fits(cal, rules, BERLIN, instant(day, 8 * 60 + 45, BERLIN))
    assert not fits(cal, rules, BERLIN, instant(day, 10 * 60 + 45, BERLIN))  # into busy time
    assert not offers(
        cal, rules, BERLIN, instant(day, 9 * 60 + 7, BERLIN), earliest=0, latest=10**10
    )
