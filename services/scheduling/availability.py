"""Free appointment times: working hours + overrides - time off - bookings, on the slot grid.

Pure code, no I/O. Instants are whole epoch seconds, so arithmetic is real elapsed time (aware
datetimes with one zoneinfo would do wall-clock arithmetic and be wrong across DST changes).
The rules, in one place:

* A date's hours are its date override when it has one, else its weekday's weekly ranges. Each
  range is clinic-local minutes after midnight, turned into instants per date with zoneinfo,
  so a day with a DST change has its real length. Touching or overlapping ranges merge.
* Candidate starts lie on the slot-interval grid from each merged range's start.
* The appointment [start, start + duration) lies inside one range; its blocked time
  [start - buffer before, end + buffer after) overlaps no busy time (time off, and the blocked
  time of booked appointments: the rule the database's exclusion constraint enforces).
* earliest <= start < latest; soonest first, then by provider id; `after` resumes behind the
  last slot of a previous answer. Work stops once `limit` slots are found.
"""

from __future__ import annotations

import bisect
import functools
import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

Interval = tuple[int, int]  # [start, end) in epoch seconds
MinuteRange = tuple[int, int]  # [start, end) in minutes after local midnight; end <= 1440
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class Rules:
    """An appointment type's shape, in seconds."""

    duration: int
    interval: int
    buffer_before: int = 0
    buffer_after: int = 0

    @classmethod
    def from_minutes(
        cls, duration: int, interval: int, buffer_before: int = 0, buffer_after: int = 0
    ) -> Rules:
        return cls(duration * 60, interval * 60, buffer_before * 60, buffer_after * 60)

    def blocked(self, start: int) -> Interval:
        return start - self.buffer_before, start + self.duration + self.buffer_after


@dataclass(frozen=True)
class Calendar:
    """One provider's hours and busy time (any order; overlaps allowed)."""

    provider_id: str
    weekly: Mapping[int, Sequence[MinuteRange]]  # ISO weekday (1 = Monday) -> ranges
    overrides: Mapping[date, Sequence[MinuteRange]] = field(default_factory=dict)
    busy: Sequence[Interval] = ()

    def ranges_on(self, day: date) -> Sequence[MinuteRange]:
        found = self.overrides.get(day)
        return found if found is not None else self.weekly.get(day.isoweekday(), ())


class FreeSlot(NamedTuple):
    start: int
    end: int
    provider_id: str


@functools.lru_cache(maxsize=4096)
def instant(day: date, minute: int, tz: ZoneInfo) -> int:
    """The epoch second of local wall-clock `minute` on `day` (1440 = the next midnight).

    A time skipped by a DST change counts as if the clock had not moved yet, an ambiguous one as
    its first occurrence (fold=0). Cached: every provider's ranges start at the same few
    times, and zoneinfo's conversion dominates the engine's work otherwise.
    """
    day += timedelta(days=minute // MINUTES_PER_DAY)
    minute %= MINUTES_PER_DAY
    local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=tz)
    return int(local.timestamp())


def local_date(epoch: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(epoch, UTC).astimezone(tz).date()


def merge(intervals: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, with overlapping or touching intervals joined; empty ones dropped."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


@functools.lru_cache(maxsize=8192)
def day_instants(day: date, ranges: tuple[MinuteRange, ...], tz: ZoneInfo) -> tuple[Interval, ...]:
    """A date's merged ranges as instants. Cached: providers mostly share a few patterns of
    hours, so a search over many providers converts each pattern once per date."""
    return tuple((instant(day, s, tz), instant(day, e, tz)) for s, e in merge(ranges))


class _Busy:
    """Merged busy intervals with a binary search for the first one ending after a time."""

    def __init__(self, intervals: Sequence[Interval]) -> None:
        merged = merge(intervals)
        self.starts = [s for s, _ in merged]
        self.ends = [e for _, e in merged]

    def blocking(self, lo: int, hi: int) -> int | None:
        """The end of the busy interval overlapping [lo, hi), or None when it is free."""
        i = bisect.bisect_right(self.ends, lo)
        if i < len(self.starts) and self.starts[i] < hi:
            return self.ends[i]
        return None


def _day_slots(
    ranges: Sequence[Interval],
    busy: _Busy,
    own: _Busy,
    provider_id: str,
    rules: Rules,
    lo: int,
    hi: int,
) -> Iterator[tuple[int, str]]:
    """(start, provider) of one provider's free slots in one date's ranges, lo <= start < hi,
    clear of the provider's busy time (with buffers) and of the patient's `own` (without)."""
    for range_start, range_end in ranges:
        start = range_start
        if start < lo:  # jump to the first grid point at or after lo
            start += -(-(lo - start) // rules.interval) * rules.interval
        while start < hi and start + rules.duration <= range_end:
            blocked_from, blocked_to = rules.blocked(start)
            busy_until = busy.blocking(blocked_from, blocked_to)
            if busy_until is None:
                if own.blocking(start, start + rules.duration) is None:
                    yield start, provider_id
                start += rules.interval
            else:
                # Jump to the first grid point whose buffer clears the busy time; it lies past
                # `start` because busy_until > start - buffer_before.
                needed = busy_until + rules.buffer_before - range_start
                start = range_start + -(-needed // rules.interval) * rules.interval


def find_slots(
    calendars: Sequence[Calendar],
    rules: Rules,
    tz: ZoneInfo,
    *,
    earliest: int,
    latest: int,
    limit: int,
    after: tuple[int, str] | None = None,
    patient_busy: Sequence[Interval] = (),
) -> list[FreeSlot]:
    """Up to `limit` free slots with earliest <= start < latest, soonest first; none overlapping
    `patient_busy` (the patient's own appointments: their times, without buffers)."""
    if limit <= 0 or earliest >= latest or not calendars:
        return []
    lo = earliest if after is None else max(earliest, after[0])
    own = _Busy(patient_busy)
    prepared = [(cal, _Busy(cal.busy)) for cal in sorted(calendars, key=lambda c: c.provider_id)]
    found: list[FreeSlot] = []
    day, last_day = local_date(lo, tz), local_date(latest, tz)
    while day <= last_day and len(found) < limit:
        # Each provider's starts come sorted and lazily: merging them computes only as many
        # slots as the answer needs, not the whole day of every provider.
        # A provider whose hours that date end before `lo` (or who is off) gets no stream.
        streams = []
        for cal, busy in prepared:
            ranges = day_instants(day, tuple(cal.ranges_on(day)), tz)
            if ranges and ranges[-1][1] - rules.duration >= lo:
                streams.append(_day_slots(ranges, busy, own, cal.provider_id, rules, lo, latest))
        for start, provider_id in heapq.merge(*streams):
            if after is not None and (start, provider_id) <= after:
                continue
            found.append(FreeSlot(start, start + rules.duration, provider_id))
            if len(found) == limit:
                break
        day += timedelta(days=1)
    return found


def offers(
    cal: Calendar, rules: Rules, tz: ZoneInfo, start: int, *, earliest: int, latest: int
) -> bool:
    """Whether `start` is one of the free slots find_slots would offer for this provider."""
    if not earliest <= start < latest:
        return False
    slots = find_slots([cal], rules, tz, earliest=start, latest=start + 1, limit=1)
    return bool(slots) and slots[0].start == start


def fits(cal: Calendar, rules: Rules, tz: ZoneInfo, start: int) -> bool:
    """Whether an appointment at `start` (on the grid or not) lies in hours and clear of busy."""
    end = start + rules.duration
    for day in {local_date(start, tz), local_date(start, tz) - timedelta(days=1)}:
        for range_start, range_end in day_instants(day, tuple(cal.ranges_on(day)), tz):
            if range_start <= start and end <= range_end:
                return _Busy(cal.busy).blocking(*rules.blocked(start)) is None
    return False
