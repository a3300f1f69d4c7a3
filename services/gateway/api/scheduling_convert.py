"""Scheduling's messages as the API's answers, and the API's values as scheduling's requests.

Instants go out in RFC 3339 with the clinic's offset (what a person there reads on a clock);
a refused time (SLOT_TAKEN, SLOT_UNAVAILABLE) becomes a 409 problem with `alternatives`.
"""

from __future__ import annotations

import functools
from datetime import datetime, tzinfo
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway.api import scheduling_models as m
from services.gateway.clinic_time import instant, timestamp
from services.gateway.context import SETTINGS
from services.gateway.schedule_view import alternatives, slot_refusal
from services.gateway.security import PROBLEM_TYPE, Problem
from services.runtime.errors import precondition_failure

WEEKDAYS: list[m.Weekday] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
]
WEEKDAY_ENUM = {name: i + 1 for i, name in enumerate(WEEKDAYS)}  # pb.WEEKDAY_MONDAY = 1 ...


def zone(request: web.Request) -> tzinfo:
    return request.app[SETTINGS].clinic_timezone


def to_timestamp(value: str) -> Timestamp:
    """A checked RFC 3339 value (scheduling_models.Instant) as an instant."""
    return timestamp(datetime.fromisoformat(value))


def at(ts: Timestamp, tz: tzinfo) -> str:
    return _rfc3339(ts.seconds, ts.nanos, tz)


@functools.lru_cache(maxsize=8192)
def _rfc3339(seconds: int, nanos: int, tz: tzinfo) -> str:
    # Cached: a page of free times repeats the same few hundred instants from call to call,
    # and zoneinfo's conversion is most of the cost of answering Find Available.
    ts = Timestamp(seconds=seconds, nanos=nanos)
    return instant(ts).astimezone(tz).isoformat()


def status_name(value: pb.AppointmentStatus.ValueType) -> str:
    # FHIR's names: APPOINTMENT_STATUS_CHECKED_IN is "checked-in".
    name = pb.AppointmentStatus.Name(value).removeprefix("APPOINTMENT_STATUS_")
    return name.lower().replace("_", "-")


def provider(found: pb.Provider) -> m.Provider:
    return m.Provider(id=found.id, display_name=found.display_name, active=found.active)


def working_hours(found: pb.WorkingHours) -> m.WorkingHours:
    return m.WorkingHours(
        provider_id=found.provider_id,
        weekly=[
            m.WeeklyHours(weekday=WEEKDAYS[r.weekday - 1], start=r.start, end=r.end)
            for r in found.weekly
            if 1 <= r.weekday <= 7
        ],
        time_zone=found.time_zone,
    )


def time_off(found: pb.TimeOff, tz: tzinfo) -> m.TimeOff:
    return m.TimeOff(
        id=found.id,
        provider_id=found.provider_id,
        start=at(found.start, tz),
        end=at(found.end, tz),
        reason=found.reason,
    )


def appointment_type(found: pb.AppointmentType) -> m.AppointmentType:
    return m.AppointmentType(
        id=found.id,
        name=found.name,
        duration_minutes=found.duration_minutes,
        slot_interval_minutes=found.slot_interval_minutes,
        buffer_before_minutes=found.buffer_before_minutes,
        buffer_after_minutes=found.buffer_after_minutes,
        minimum_notice_minutes=found.minimum_notice_minutes,
        horizon_days=found.horizon_days,
        cancellation_notice_minutes=found.cancellation_notice_minutes,
        bookable_online=found.bookable_online,
        provider_ids=list(found.provider_ids),
    )


def type_fields(body: m.NewAppointmentType) -> pb.AppointmentTypeFields:
    optional = {
        name: value
        for name in (
            "slot_interval_minutes",
            "buffer_before_minutes",
            "buffer_after_minutes",
            "minimum_notice_minutes",
            "horizon_days",
            "cancellation_notice_minutes",
        )
        if (value := getattr(body, name)) is not None
    }
    return pb.AppointmentTypeFields(
        name=body.name.strip(),
        duration_minutes=body.duration_minutes,
        bookable_online=body.bookable_online,
        provider_ids=body.provider_ids,
        **optional,
    )


def slot(found: pb.Slot, tz: tzinfo) -> m.Slot:
    return m.Slot(
        provider_id=found.provider_id,
        provider_name=found.provider_name,
        start=at(found.start, tz),
        end=at(found.end, tz),
    )


def appointment(found: pb.Appointment, tz: tzinfo) -> m.Appointment:
    return m.Appointment(
        id=found.id,
        status=status_name(found.status),  # type: ignore[arg-type]
        patient_id=found.patient_id,
        provider_id=found.provider_id,
        provider_name=found.provider_name,
        appointment_type_id=found.appointment_type_id,
        appointment_type_name=found.appointment_type_name,
        start=at(found.start, tz),
        end=at(found.end, tz),
        cancellation_reason=found.cancellation_reason,
        cancellable_until=at(found.cancellable_until, tz),
        created_at=at(found.created_at, tz),
        updated_at=at(found.updated_at, tz),
    )


class SlotProblem(Problem):
    """409 for a time that cannot be booked, with the free times to offer instead."""

    def __init__(self, code: str, detail: str, slots: list[dict[str, Any]]) -> None:
        super().__init__(409, "Time not available", detail, code=code)
        self.slots = slots

    def response(self) -> web.Response:
        body = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
            "alternatives": self.slots,
        }
        return web.json_response(body, status=self.status, content_type=PROBLEM_TYPE)


def slot_problem(exc: grpc.aio.AioRpcError, tz: tzinfo) -> Problem | None:
    """The 409 with alternatives for SLOT_TAKEN / SLOT_UNAVAILABLE, else None."""
    kind = slot_refusal(exc)
    if not kind:
        return None
    _, description = precondition_failure(exc)
    slots = [slot(s, tz).model_dump() for s in alternatives(exc)]
    return SlotProblem(kind, description or exc.details() or "", slots)
