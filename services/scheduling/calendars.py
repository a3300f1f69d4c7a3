"""Feeding the availability engine from PostgreSQL: only the rows a question needs.

Hours and overrides of the offering providers are read once; busy time (time off and the
blocked ranges of appointments that hold time, one query through the exclusion constraint's
GiST index) is read per window, starting with a few days and widening until `limit` slots are
found or the horizon ends, so "the next 20 times" never reads 90 days of bookings.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from services.runtime.db import Conn
from services.scheduling import availability
from services.scheduling.availability import Calendar, FreeSlot, Interval, MinuteRange, Rules
from services.scheduling.convert import HOLDING

FIRST_WINDOW = 86400  # seconds; each further window is four times wider

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
        )

    def window(self, now: int) -> tuple[int, int]:
        """[earliest, latest) starts a patient may book: minimum notice to the horizon."""
        return now + self.minimum_notice, now + self.horizon


async def load_type(conn: Conn, type_id: uuid.UUID) -> TypeRules | None:
    row = await conn.fetchrow(
        f"SELECT {TYPE_COLUMNS} FROM appointment_types WHERE id = $1", type_id
    )
    return None if row is None else TypeRules.from_row(row)


async def offering_providers(
    conn: Conn, type_id: uuid.UUID, provider_id: uuid.UUID | None = None
) -> dict[str, str]:
    """Active providers offering the type (only `provider_id` when given): id -> name."""
    rows = await conn.fetch(
        """SELECT p.id, p.display_name FROM providers p
           JOIN appointment_type_providers o ON o.provider_id = p.id
           WHERE o.appointment_type_id = $1 AND p.active AND ($2::uuid IS NULL OR p.id = $2)""",
        type_id,
        provider_id,
    )
    return {str(r["id"]): r["display_name"] for r in rows}


async def load_hours(
    conn: Conn, provider_ids: Sequence[str], first: date, last: date
) -> list[Calendar]:
    """Weekly hours and the date overrides between first and last, without busy time."""
    ids = [uuid.UUID(p) for p in provider_ids]
    weekly: dict[str, dict[int, list[MinuteRange]]] = defaultdict(lambda: defaultdict(list))
    for r in await conn.fetch(
        """SELECT provider_id, array_agg(weekday) AS days, array_agg(start_minute) AS starts,
                  array_agg(end_minute) AS ends
           FROM working_hours WHERE provider_id = ANY($1::uuid[]) GROUP BY provider_id""",
        ids,
    ):
        hours = weekly[str(r["provider_id"])]
        for day, start, end in zip(r["days"], r["starts"], r["ends"], strict=True):
            hours[day].append((start, end))
    overrides: dict[str, dict[date, list[MinuteRange]]] = defaultdict(dict)
    for r in await conn.fetch(
        """SELECT o.provider_id, o.day, r.start_minute, r.end_minute
           FROM date_overrides o LEFT JOIN date_override_ranges r USING (provider_id, day)
           WHERE o.provider_id = ANY($1::uuid[]) AND o.day BETWEEN $2 AND $3""",
        ids,
        first,
        last,
    ):
        ranges = overrides[str(r["provider_id"])].setdefault(r["day"], [])
        if r["start_minute"] is not None:
            ranges.append((r["start_minute"], r["end_minute"]))
    return [
        Calendar(provider_id=p, weekly=dict(weekly[p]), overrides=dict(overrides[p]))
        for p in provider_ids
    ]


async def load_busy(
    conn: Conn, provider_ids: Sequence[str], lo: int, hi: int, *, bookings: bool = True
) -> dict[str, list[Interval]]:
    """Time off, and (unless bookings=False) blocked time of appointments, overlapping [lo, hi)."""
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
                WHERE $4 AND provider_id = ANY($1::uuid[])
                  AND blocked && tstzrange(to_timestamp($2), to_timestamp($3))
                  AND status IN {HOLDING!r}
            ) AS busy GROUP BY provider_id""",
        [uuid.UUID(p) for p in provider_ids],
        lo,
        hi,
        bookings,
    )
    busy: dict[str, list[Interval]] = {
        str(r["provider_id"]): list(zip(r["los"], r["his"], strict=True)) for r in rows
    }
    return busy


async def search(
    conn: Conn,
    tz: ZoneInfo,
    kind: TypeRules,
    providers: Sequence[str],
    *,
    earliest: int,
    latest: int,
    limit: int,
    after: tuple[int, str] | None = None,
) -> list[FreeSlot]:
    """Up to `limit` free slots of the type among `providers`, soonest first."""
    lo = earliest if after is None else max(earliest, after[0])
    if not providers or lo >= latest or limit <= 0:
        return []
    hours = await load_hours(
        conn,
        providers,
        availability.local_date(lo, tz) - timedelta(days=1),
        availability.local_date(latest, tz) + timedelta(days=1),
    )
    rules = kind.rules
    found: list[FreeSlot] = []
    window = FIRST_WINDOW
    while lo < latest and len(found) < limit:
        hi = min(latest, lo + window)
        busy = await load_busy(
            conn, providers, lo - rules.buffer_before, hi + rules.duration + rules.buffer_after
        )
        calendars = [replace(cal, busy=busy.get(cal.provider_id, [])) for cal in hours]
        found += availability.find_slots(
            calendars, rules, tz, earliest=lo, latest=hi, limit=limit - len(found), after=after
        )
        lo, window = hi, window * 4
    return found


async def calendar_for(
    conn: Conn, tz: ZoneInfo, provider_id: str, start: int, *, bookings: bool = False
) -> Calendar:
    """One provider's calendar around `start` (time off only unless bookings=True)."""
    day = availability.local_date(start, tz)
    [cal] = await load_hours(conn, [provider_id], day - timedelta(days=1), day + timedelta(days=1))
    busy = await load_busy(
        conn, [provider_id], start - 2 * 86400, start + 2 * 86400, bookings=bookings
    )
    return replace(cal, busy=busy.get(provider_id, []))
