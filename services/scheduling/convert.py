"""Rows to protobuf messages, and the wire names of statuses and clock times."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from portal.scheduling.v1 import scheduling_pb2 as pb

STATUSES: dict[str, pb.AppointmentStatus.ValueType] = {
    "proposed": pb.APPOINTMENT_STATUS_PROPOSED,
    "pending": pb.APPOINTMENT_STATUS_PENDING,
    "booked": pb.APPOINTMENT_STATUS_BOOKED,
    "arrived": pb.APPOINTMENT_STATUS_ARRIVED,
    "fulfilled": pb.APPOINTMENT_STATUS_FULFILLED,
    "cancelled": pb.APPOINTMENT_STATUS_CANCELLED,
    "noshow": pb.APPOINTMENT_STATUS_NOSHOW,
    "entered-in-error": pb.APPOINTMENT_STATUS_ENTERED_IN_ERROR,
    "checked-in": pb.APPOINTMENT_STATUS_CHECKED_IN,
    "waitlist": pb.APPOINTMENT_STATUS_WAITLIST,
}
STATUS_NAMES = {value: name for name, value in STATUSES.items()}
# Statuses that hold the provider's time (the exclusion constraint's WHERE clause).
HOLDING = ("pending", "booked", "arrived", "checked-in", "fulfilled")
_CLOCK = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def timestamp(value: datetime | int) -> Timestamp:
    ts = Timestamp()
    if isinstance(value, int):
        ts.FromSeconds(value)
    else:
        ts.FromDatetime(value)
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def parse_clock(text: str) -> int | None:
    """Minutes after midnight of "HH:MM" ("24:00" = 1440), or None when malformed."""
    match = _CLOCK.match(text.strip())
    if not match:
        return None
    minutes = int(match[1]) * 60 + int(match[2])
    return minutes if minutes <= 1440 else None


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def provider(row: asyncpg.Record) -> pb.Provider:
    return pb.Provider(id=str(row["id"]), display_name=row["display_name"], active=row["active"])


def appointment_type(row: asyncpg.Record, provider_ids: list[str]) -> pb.AppointmentType:
    return pb.AppointmentType(
        id=str(row["id"]),
        name=row["name"],
        duration_minutes=row["duration_minutes"],
        bookable_online=row["bookable_online"],
        slot_interval_minutes=row["slot_interval_minutes"],
        buffer_before_minutes=row["buffer_before_minutes"],
        buffer_after_minutes=row["buffer_after_minutes"],
        minimum_notice_minutes=row["minimum_notice_minutes"],
        horizon_days=row["horizon_days"],
        cancellation_notice_minutes=row["cancellation_notice_minutes"],
        provider_ids=provider_ids,
    )


def appointment(row: asyncpg.Record | Mapping[str, Any]) -> pb.Appointment:
    notice = timedelta(minutes=row["cancellation_notice_minutes"])
    return pb.Appointment(
        id=str(row["id"]),
        status=STATUSES[row["status"]],
        patient_id=str(row["patient_id"]),
        provider_id=str(row["provider_id"]),
        provider_name=row["provider_name"],
        appointment_type_id=str(row["appointment_type_id"]),
        appointment_type_name=row["appointment_type_name"],
        start=timestamp(row["starts_at"]),
        end=timestamp(row["ends_at"]),
        cancellation_reason=row["cancellation_reason"],
        created_at=timestamp(row["created_at"]),
        updated_at=timestamp(row["updated_at"]),
        cancellable_until=timestamp(row["starts_at"] - notice),
    )


def time_off(row: asyncpg.Record) -> pb.TimeOff:
    return pb.TimeOff(
        id=str(row["id"]),
        provider_id=str(row["provider_id"]),
        start=timestamp(row["during"].lower),
        end=timestamp(row["during"].upper),
        reason=row["reason"],
    )
