"""Validation of the practice's set-up: provider names, hours, dates and appointment types."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from google.protobuf.message import Message

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.runtime import text
from services.runtime.errors import FieldErrors
from services.scheduling.convert import parse_clock

NAME_LIMIT = 200
REASON_LIMIT = 500


def name_problem(value: str, what: str = "Name") -> str | None:
    if not value.strip():
        return f"{what} is required."
    if len(value) > NAME_LIMIT:
        return f"{what} must be at most {NAME_LIMIT} characters."
    return text.problem(value)


def name_taken(name: str) -> str:
    return f"An active provider is already called {name}. Choose another name."


REACTIVATE_TAKEN = (
    "An active provider has this name now. Rename one of them first, then reactivate."
)


def reason_problem(value: str) -> str | None:
    if len(value) > REASON_LIMIT:
        return f"Reason must be at most {REASON_LIMIT} characters."
    return text.problem(value, multiline=True)


# The years a date may name: those of the API's instants (the gateway's INSTANT_PATTERN), far
# from the ends of Python's dates so that a day's bounds in any zone are instants.
FIRST_YEAR, LAST_YEAR = 1970, 2199


FIRST_INSTANT = int(datetime(FIRST_YEAR, 1, 1, tzinfo=UTC).timestamp())
END_INSTANT = int(datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC).timestamp())
INSTANT_OUT_OF_RANGE = f"Use a time from {FIRST_YEAR} to {LAST_YEAR}."


def check_instants(request: Message, errors: FieldErrors, *fields: str) -> None:
    """A message for each of `fields` (Timestamps, when set) outside FIRST_YEAR-LAST_YEAR."""
    for name in fields:
        if request.HasField(name) and not (
            FIRST_INSTANT <= getattr(request, name).seconds < END_INSTANT
        ):
            errors.setdefault(name, []).append(INSTANT_OUT_OF_RANGE)


def parse_date(value: str) -> date | None:
    """'2026-03-29'; None when it does not read or lies outside FIRST_YEAR-LAST_YEAR."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if FIRST_YEAR <= day.year <= LAST_YEAR else None


def clock_range(
    item: pb.TimeRange | pb.WeeklyRange, field: str, errors: FieldErrors
) -> tuple[int, int] | None:
    """Minutes of one "HH:MM" pair; problems go to errors as field.start / field.end."""
    start, end = parse_clock(item.start), parse_clock(item.end)
    if start is None or start >= 1440:
        errors.setdefault(f"{field}.start", []).append("Use a time such as 09:00.")
        return None
    if end is None:
        errors.setdefault(f"{field}.end", []).append("Use a time such as 17:30.")
        return None
    if end <= start:
        errors.setdefault(f"{field}.end", []).append("End must be after start.")
        return None
    return start, end


def ranges(
    items: Sequence[pb.TimeRange | pb.WeeklyRange], field: str, errors: FieldErrors
) -> list[tuple[int, int]]:
    """The valid ranges of items; problems go to errors as field[i].start / .end."""
    parsed = [clock_range(item, f"{field}[{i}]", errors) for i, item in enumerate(items)]
    return [r for r in parsed if r is not None]


def overlapping(parsed: Sequence[tuple[int, int]]) -> bool:
    ordered = sorted(parsed)
    return any(b[0] < a[1] for a, b in itertools.pairwise(ordered))


@dataclass(frozen=True)
class TypeValues:
    name: str
    duration: int
    slot_interval: int
    buffer_before: int
    buffer_after: int
    minimum_notice: int
    horizon_days: int
    cancellation_notice: int
    bookable_online: bool
    provider_ids: list[uuid.UUID]

    def row(self) -> tuple[object, ...]:
        return (
            self.name,
            self.duration,
            self.slot_interval,
            self.buffer_before,
            self.buffer_after,
            self.minimum_notice,
            self.horizon_days,
            self.cancellation_notice,
            self.bookable_online,
        )


def type_values(f: pb.AppointmentTypeFields) -> tuple[TypeValues, FieldErrors]:
    """Apply the defaults and check every bound; the values are usable only without errors."""
    errors: FieldErrors = {}
    name = f.name.strip()
    problem = name_problem(name)
    if problem:
        errors["name"] = [problem]

    def bounded(field: str, value: int, low: int, high: int, label: str) -> int:
        if not low <= value <= high:
            errors[field] = [f"{label} must be between {low} and {high}."]
        return value

    duration = bounded("duration_minutes", f.duration_minutes, 5, 480, "Duration (minutes)")

    def optional(field: str, default: int, low: int, high: int, label: str) -> int:
        # Defaults are not checked: the slot interval's (the duration) is reported already.
        if not f.HasField(field):  # type: ignore[arg-type]
            return default
        return bounded(field, getattr(f, field), low, high, label)

    provider_ids: list[uuid.UUID] = []
    for raw in f.provider_ids:
        try:
            provider_ids.append(uuid.UUID(raw))
        except ValueError:
            errors["provider_ids"] = ["Provider id is not valid."]
    values = TypeValues(
        name=name,
        duration=duration,
        slot_interval=optional("slot_interval_minutes", duration, 5, 480, "Slot interval"),
        buffer_before=optional("buffer_before_minutes", 0, 0, 240, "Buffer before"),
        buffer_after=optional("buffer_after_minutes", 0, 0, 240, "Buffer after"),
        minimum_notice=optional("minimum_notice_minutes", 60, 0, 43200, "Minimum notice"),
        horizon_days=optional("horizon_days", 90, 1, 365, "Booking horizon (days)"),
        cancellation_notice=optional(
            "cancellation_notice_minutes", 1440, 0, 43200, "Cancellation notice"
        ),
        bookable_online=f.bookable_online,
        provider_ids=sorted(set(provider_ids)),
    )
    return values, errors
