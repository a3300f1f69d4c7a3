"""A regular expression for exactly the birth dates the API accepts: real calendar dates from
1900-01-01 to a given day, written YYYY-MM-DD or M/D/YYYY (a leading zero is optional there).

The document's `pattern` for `date_of_birth` is built from it when the app starts, so a fuzzer
drawing from the pattern draws only dates the server takes, and anything else is refused.
"""

from __future__ import annotations

import calendar
from datetime import date

FIRST_YEAR = 1900


def _upto(high: int) -> str:
    """Two digits from 01 to `high` (at most 31)."""
    tens, units = divmod(high, 10)
    parts = ["0[1-9]"] if tens else [f"0[1-{units}]"] if units else []
    parts += [f"{t}[0-9]" for t in range(1, tens)]
    if tens:
        parts.append(f"{tens}[0-{units}]")
    return "|".join(parts)


def _years(first: int, last: int) -> str:
    """Four-digit years from `first` to `last`, as few alternatives as it takes."""
    parts: list[str] = []
    year = first
    while year <= last:
        if year % 100 == 0 and year + 99 <= last:
            parts.append(f"{year // 100}[0-9]{{2}}")
            year += 100
        elif year % 10 == 0 and year + 9 <= last:
            parts.append(f"{year // 10}[0-9]")
            year += 10
        else:
            parts.append(str(year))
            year += 1
    return "|".join(parts)


def _days(month: int, leap: bool) -> int:
    return calendar.monthrange(2000 if leap else 1999, month)[1]


def birth_date_pattern(today: date) -> str:
    iso: list[str] = []
    us: list[str] = []

    def add(years: str, month: int, days: str) -> None:
        iso.append(f"(?:{years})-{month:02d}-(?:{days})")
        us_month = f"0?{month}" if month < 10 else str(month)
        us_days = days.replace("0[", "0?[")  # a leading zero is optional in M/D/YYYY
        us.append(f"{us_month}/(?:{us_days})/(?:{years})")

    last_full = today.year - 1
    if last_full >= FIRST_YEAR:
        full = _years(FIRST_YEAR, last_full)
        leaps = "|".join(str(y) for y in range(FIRST_YEAR, last_full + 1) if calendar.isleap(y))
        for month in range(1, 13):
            add(full, month, _upto(_days(month, False)))
        add(leaps, 2, "29")
    leap = calendar.isleap(today.year)
    for month in range(1, today.month):
        add(str(today.year), month, _upto(_days(month, leap)))
    add(str(today.year), today.month, _upto(today.day))
    return "^(?:" + "|".join(iso + us) + ")$"
