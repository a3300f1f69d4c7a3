"""Feeding the availability engine from PostgreSQL: only the rows a question needs.

Hours and overrides of the offering providers are read once; busy time (time off and the
blocked ranges of appointments that hold time, one query through the exclusion constraint's
GiST index) is read per window: the span in which the hours alone offer a few times `limit`
starts, widening until `limit` slots are found or the horizon ends, so "the next 20 times"
never reads 90 days (nor, after closing time, a whole idle day) of bookings.
"""

from __future__ import annotations

import functools
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import asyncpg

from services.runtime.db import Conn
from services.scheduling import availability
from services.scheduling.availability import Calendar, FreeSlot, Interval, MinuteRange, Rules
from services.scheduling.convert import HOLDING

# The first window holds this many candidate starts per slot asked for; each further window
# four times as many (a calendar booked beyond 1 - 1/FIRST_CANDIDATES needs a second read).
FIRST_CANDIDATES = 2

TYPE_COLUMNS = """id, name, duration_minutes, slot_interval_minutes, buffer_before_minutes,
    buffer_after_minutes, minimum_notice_minutes, horizon_days, cancellation_notice_minutes,
    bookable_online"""


@dataclass(frozen=True)
class TypeRules:
    """An appointment type as the engine and the booking rules need it (seconds)."""

    id: uuid.UUID
    name: str
    rules: Rules
    minimum_notice: int
    horizon: int
    bookable_online: bool
    cancellation_notice_minutes: int = 0

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> TypeRules:
        return cls(
            id=row["id"],
            name=row["name"],
            rules=Rules.from_minutes(
                row["duration_minutes"],
                row["slot_interval_minutes"],
                row["buffer_before_minutes"],
                row["buffer_after_minutes"],
            ),
            minimum_notice=row["minimum_notice_minutes"] * 60,
            horizon=row["horizon_days"] * 86400,
            bookable_online=row["bookable_online"],
            cancellation_notice_minutes=row["cancellation_notice_minutes"],
        )

    def window(self, now: int) -> tuple[int, int]:
        """[earliest, latest) starts a patient may book: minimum notice to the horizon."""
        return now + self.minimum_notice, now + self.horizon


async def load_type(conn: Conn, type_id: uuid.UUID) -> TypeRules | None:
    row = await conn.fetchrow(
        f"SELECT {TYPE_COLUMNS} FROM appointment_types WHERE id = $1", type_id
    )
    return None if row is None else TypeRules.from_row(row)


class Offering(NamedTuple):
    name: str
    hours_version: int  # see HoursCache


async def offering_providers(
    conn: Conn, type_id: uuid.UUID, provider_id: uuid.UUID | None = None
) -> dict[str, Offering]:
    """Active providers offering the type (only `provider_id` when given), by id."""
    rows = await conn.fetch(
        """SELECT p.id, p.display_name, p.hours_version FROM providers p
           JOIN appointment_type_providers o ON o.provider_id = p.id
           WHERE o.appointment_type_id = $1 AND p.active AND ($2::uuid IS NULL OR p.id = $2)""",
        type_id,
        provider_id,
    )
    found = {str(r["id"]): Offering(r["display_name"], r["hours_version"]) for r in rows}
    return dict(sorted(found.items()))


# A weekly range packed into one integer, (weekday * 1441 + start) * 1441 + end: a provider's
# week is then one int array, and equal weeks (most providers share a few) parse once.
PACK = 1441


@functools.lru_cache(maxsize=1024)
def weekly_hours(packed: tuple[int, ...]) -> Mapping[int, tuple[MinuteRange, ...]]:
    """ISO weekday -> ranges of a packed week (shared between calls: never mutate it)."""
    week: dict[int, list[MinuteRange]] = defaultdict(list)
    for value in packed:
        day_start, end = divmod(value, PACK)
        day, start = divmod(day_start, PACK)
        week[day].append((start, end))
    return {day: tuple(ranges) for day, ranges in week.items()}


class HoursCache:
    """Providers' weekly hours and date overrides, parsed, kept by this process between searches.

    A provider's entry serves while its hours_version (moved by triggers on every change to its
    hours or overrides: 0007_find_available_reads.sql) is the one the caller has just read, and
    it holds the overrides from the first date asked on. So a search reads hours only for
    providers whose hours changed, whichever scheduling process changed them.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._kept: dict[str, tuple[int, date, Calendar]] = {}

    async def calendars(
        self, conn: Conn, versions: Mapping[str, int], first: date
    ) -> list[Calendar]:
        """The calendars (no busy time) of the providers in `versions`, in its order."""
        found = {p: kept[2] for p, v in versions.items() if (kept := self._serving(p, v, first))}
        stale = [p for p in versions if p not in found]
        if stale:
            if len(self._kept) + len(stale) > self.limit:
                self._kept.clear()
            for row in await conn.fetch(
                f"""SELECT p.id::text AS id, coalesce(v.hours_version, -1) AS hours_version,
                           w.packed, o.days, o.starts, o.ends
                    FROM unnest($1::text[]::uuid[]) AS p(id)
                    LEFT JOIN providers v ON v.id = p.id
                    CROSS JOIN LATERAL ({week_sql("p.id")}) AS w
                    CROSS JOIN LATERAL ({overrides_sql("p.id", "$2", "'infinity'")}) AS o""",
                stale,
                first,
            ):
                found[row["id"]] = calendar_of(row["id"], row)
                self._kept[row["id"]] = (row["hours_version"], first, found[row["id"]])
        return [found[p] for p in versions]

    def _serving(
        self, provider_id: str, version: int, first: date
    ) -> tuple[int, date, Calendar] | None:
        kept = self._kept.get(provider_id)
        return kept if kept is not None and kept[0] == version and kept[1] <= first else None


def week_sql(provider: str) -> str:
    """A provider's packed week as one row (`packed`); `provider` is an SQL expression."""
    return f"""SELECT array_agg((weekday * {PACK} + start_minute) * {PACK} + end_minute
                                ORDER BY weekday, start_minute) AS packed
               FROM working_hours WHERE provider_id = {provider}"""


def overrides_sql(provider: str, first: str, last: str) -> str:
    """A provider's overrides between two dates as parallel arrays in one row."""
    return f"""SELECT array_agg(o.day ORDER BY o.day, r.start_minute) AS days,
                      array_agg(r.start_minute ORDER BY o.day, r.start_minute) AS starts,
                      array_agg(r.end_minute ORDER BY o.day, r.start_minute) AS ends
               FROM date_overrides o LEFT JOIN date_override_ranges r USING (provider_id, day)
               WHERE o.provider_id = {provider} AND o.day BETWEEN {first} AND {last}"""


def calendar_of(provider_id: str, row: asyncpg.Record) -> Calendar:
    """A Calendar from a row with the columns of week_sql and overrides_sql (no busy time)."""
    overrides: dict[date, list[MinuteRange]] = {}
    days, starts, ends = row["days"] or (), row["starts"] or (), row["ends"] or ()
    for day, start, end in zip(days, starts, ends, strict=True):
        ranges = overrides.setdefault(day, [])
        if start is not None:
            ranges.append((start, end))
    return Calendar(
        provider_id=provider_id,
        weekly=weekly_hours(tuple(row["packed"] or ())),
        overrides=overrides,
    )


@dataclass(frozen=True)
class BookingContext:
    """What a booking checks before it writes, read by one statement (booking_context)."""

    kind: TypeRules | None  # None: no such appointment type
    provider_name: str | None  # None: no such provider
    provider_active: bool
    offered: bool  # the provider offers the type
    calendar: Calendar  # hours around the start and time off (no bookings)
    key: asyncpg.Record | None  # (request_hash, appointment_id) when the caller's key is stored
    patient_known: bool = False  # the patient asked about is in the projection (patients.py)


async def booking_context(
    conn: Conn,
    tz: ZoneInfo,
    type_id: uuid.UUID,
    provider_id: uuid.UUID,
    start: int,
    *,
    caller: str = "",
    key: str = "",
    patient_id: uuid.UUID | None = None,
) -> BookingContext:
    """The type, the provider, its calendar around `start`, the stored key and whether
    scheduling knows `patient_id` (None: not asked), in one round trip"""
    day = availability.local_date(start, tz)
    type_columns = ", ".join(f"t.{c.strip()}" for c in TYPE_COLUMNS.split(","))
    row = await conn.fetchrow(
        f"""SELECT t.id IS NOT NULL AS type_found, {type_columns},
                   p.display_name, coalesce(p.active, false) AS active,
                   EXISTS (SELECT FROM appointment_type_providers o
                           WHERE o.appointment_type_id = $1 AND o.provider_id = $2) AS offered,
                   w.packed, o.days, o.starts, o.ends, b.los, b.his,
                   k.request_hash, k.appointment_id AS key_appointment_id,
                   EXISTS (SELECT FROM patients WHERE id = $9) AS patient_known
            FROM (SELECT) AS one
            LEFT JOIN appointment_types t ON t.id = $1
            LEFT JOIN providers p ON p.id = $2
            CROSS JOIN LATERAL ({week_sql("$2")}) AS w
            CROSS JOIN LATERAL ({overrides_sql("$2", "$3::date", "$4::date")}) AS o
            CROSS JOIN LATERAL (
                SELECT array_agg(extract(epoch FROM lower(during))::bigint) AS los,
                       array_agg(extract(epoch FROM upper(during))::bigint) AS his
                FROM time_off WHERE provider_id = $2
                  AND during && tstzrange(to_timestamp($5), to_timestamp($6))) AS b
            LEFT JOIN idempotency_keys k ON $8 <> '' AND k.caller = $7 AND k.key = $8""",
        type_id,
        provider_id,
        day - timedelta(days=1),
        day + timedelta(days=1),
        start - 2 * 86400,
        start + 2 * 86400,
        caller,
        key,
        patient_id,
    )
    if row is None:
        raise LookupError("the booking context query returns one row")
    cal = calendar_of(str(provider_id), row)
    busy = list(zip(row["los"] or (), row["his"] or (), strict=True))
    return BookingContext(
        kind=TypeRules.from_row(row) if row["type_found"] else None,
        provider_name=row["display_name"],
        provider_active=row["active"],
        offered=row["offered"],
        calendar=replace(cal, busy=busy),
        key=row if row["key_appointment_id"] is not None else None,
        patient_known=row["patient_known"],
    )


# Busy time of a few providers is found fastest through the exclusion constraint's
# (provider_id, blocked) index; of many, through the blocked-only index (0007), as that one
# takes `provider_id = ANY(ids)` one id at a time. "IS TRUE" keeps the clause out of the index
# conditions, which the generic plan of the prepared statement would otherwise put it in.
FEW_PROVIDERS = 8


async def load_busy(
    conn: Conn, provider_ids: Sequence[str], lo: int, hi: int
) -> dict[str, list[Interval]]:
    """Time off, and blocked time of appointments that hold time, overlapping [lo, hi)."""
    among = "provider_id = ANY($1::uuid[])"
    if len(provider_ids) > FEW_PROVIDERS:
        among = f"({among}) IS TRUE"
    # One row per provider with two arrays: far fewer records to decode than one per interval.
    rows = await conn.fetch(
        f"""SELECT provider_id, array_agg(lo) AS los, array_agg(hi) AS his FROM (
                SELECT provider_id, extract(epoch FROM lower(during))::bigint AS lo,
                       extract(epoch FROM upper(during))::bigint AS hi
                FROM time_off
                WHERE provider_id = ANY($1::uuid[])
                  AND during && tstzrange(to_timestamp($2), to_timestamp($3))
                UNION ALL
                SELECT provider_id, extract(epoch FROM lower(blocked))::bigint,
                       extract(epoch FROM upper(blocked))::bigint
                FROM appointments
                WHERE {among} AND blocked && tstzrange(to_timestamp($2), to_timestamp($3))
                  AND status IN {HOLDING!r}
            ) AS busy GROUP BY provider_id""",
        [uuid.UUID(p) for p in provider_ids],
        lo,
        hi,
    )
    busy: dict[str, list[Interval]] = {
        str(r["provider_id"]): list(zip(r["los"], r["his"], strict=True)) for r in rows
    }
    return busy


async def own_appointments(
    conn: Conn, patient_id: uuid.UUID, lo: int, hi: int, *, besides: uuid.UUID | None = None
) -> list[Interval]:
    """The patient's appointments holding time in [lo, hi) (epoch seconds), except `besides`
    (one being moved): the times Find Available does not offer them, and what refuses a
    booking of theirs that overlaps one (PATIENT_BUSY)."""
    rows = await conn.fetch(
        f"""SELECT extract(epoch FROM starts_at)::bigint AS s,
                   extract(epoch FROM ends_at)::bigint AS e
            FROM appointments
            WHERE patient_id = $1 AND starts_at < $3 AND ends_at > $2
              AND status IN {HOLDING!r} AND id IS DISTINCT FROM $4""",
        patient_id,
        datetime.fromtimestamp(lo, UTC),
        datetime.fromtimestamp(hi, UTC),
        besides,
    )
    return [(r["s"], r["e"]) for r in rows]


async def search(
    conn: Conn,
    tz: ZoneInfo,
    kind: TypeRules,
    providers: Mapping[str, int],
    hours: HoursCache,
    *,
    earliest: int,
    latest: int,
    limit: int,
    after: tuple[int, str] | None = None,
    patient_busy: Sequence[Interval] = (),
) -> list[FreeSlot]:
    """Up to `limit` free slots of the type among `providers` (id -> hours_version), soonest
    first, clear of `patient_busy` (availability.find_slots)."""
    lo = earliest if after is None else max(earliest, after[0])
    if not providers or lo >= latest or limit <= 0:
        return []
    first = availability.local_date(lo, tz) - timedelta(days=1)
    week = await hours.calendars(conn, providers, first)
    ids = list(providers)
    rules = kind.rules
    found: list[FreeSlot] = []
    wanted = limit * FIRST_CANDIDATES
    while lo < latest and len(found) < limit:
        # The window ends where the hours alone (nothing booked) offer `wanted` starts: busy
        # time is read only for a span the answer can need, whatever the time of day.
        candidates = availability.find_slots(
            week,
            rules,
            tz,
            earliest=lo,
            latest=latest,
            limit=wanted,
            after=after,
            patient_busy=patient_busy,
        )
        if not candidates:
            break  # no hours before the horizon
        hi = latest if len(candidates) < wanted else candidates[-1].start + 1
        busy = await load_busy(
            conn, ids, lo - rules.buffer_before, hi + rules.duration + rules.buffer_after
        )
        calendars = [replace(cal, busy=busy.get(cal.provider_id, ())) for cal in week]
        found += availability.find_slots(
            calendars,
            rules,
            tz,
            earliest=lo,
            latest=hi,
            limit=limit - len(found),
            after=after,
            patient_busy=patient_busy,
        )
        lo, wanted = hi, wanted * 4
    return found
