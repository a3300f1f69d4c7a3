"""Appointments and free times as the staff and patient pages show them.

Both portals share these: status words, slots grouped by day, the radio value that names one
slot (provider id and start, nothing else), and the alternatives scheduling sends with a
SLOT_TAKEN or SLOT_UNAVAILABLE refusal.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway.clinic_time import When, long_day, when
from services.runtime.errors import detail_of, precondition_kind

STATUS_LABEL: dict[int, str] = {
    pb.APPOINTMENT_STATUS_PROPOSED: "Proposed",
    pb.APPOINTMENT_STATUS_PENDING: "Pending",
    pb.APPOINTMENT_STATUS_BOOKED: "Booked",
    pb.APPOINTMENT_STATUS_ARRIVED: "Arrived",
    pb.APPOINTMENT_STATUS_FULFILLED: "Fulfilled",
    pb.APPOINTMENT_STATUS_CANCELLED: "Cancelled",
    pb.APPOINTMENT_STATUS_NOSHOW: "No-show",
    pb.APPOINTMENT_STATUS_ENTERED_IN_ERROR: "Entered in error",
    pb.APPOINTMENT_STATUS_CHECKED_IN: "Checked in",
    pb.APPOINTMENT_STATUS_WAITLIST: "Waitlist",
}
STATUS_BADGE: dict[int, str] = {
    pb.APPOINTMENT_STATUS_BOOKED: "info",
    pb.APPOINTMENT_STATUS_ARRIVED: "accent",
    pb.APPOINTMENT_STATUS_CHECKED_IN: "accent",
    pb.APPOINTMENT_STATUS_FULFILLED: "success",
    pb.APPOINTMENT_STATUS_NOSHOW: "warning",
    pb.APPOINTMENT_STATUS_CANCELLED: "danger",
}
# Statuses that hold the time (scheduling's exclusion constraint counts the same ones).
HOLDING = frozenset(
    {
        pb.APPOINTMENT_STATUS_PENDING,
        pb.APPOINTMENT_STATUS_BOOKED,
        pb.APPOINTMENT_STATUS_ARRIVED,
        pb.APPOINTMENT_STATUS_CHECKED_IN,
        pb.APPOINTMENT_STATUS_FULFILLED,
    }
)
SLOT_REFUSALS = ("SLOT_TAKEN", "SLOT_UNAVAILABLE")
# Staff status actions: (form value, button, the statuses scheduling lets it follow).
STATUS_ACTIONS = [
    (
        "arrived",
        "Mark arrived",
        {pb.APPOINTMENT_STATUS_BOOKED, pb.APPOINTMENT_STATUS_CHECKED_IN},
    ),
    (
        "fulfilled",
        "Mark fulfilled",
        {
            pb.APPOINTMENT_STATUS_BOOKED,
            pb.APPOINTMENT_STATUS_ARRIVED,
            pb.APPOINTMENT_STATUS_CHECKED_IN,
        },
    ),
    ("noshow", "Mark no-show", {pb.APPOINTMENT_STATUS_BOOKED}),
]


@dataclass(frozen=True)
class AppointmentView:
    id: str
    patient_id: str
    provider_id: str
    provider_name: str
    type_name: str
    status: int
    when: When
    cancellable_until: datetime | None
    cancellation_reason: str

    @property
    def status_label(self) -> str:
        return STATUS_LABEL.get(self.status, "Unknown")

    @property
    def badge(self) -> str:
        return STATUS_BADGE.get(self.status, "")

    @property
    def booked(self) -> bool:
        return self.status == pb.APPOINTMENT_STATUS_BOOKED

    @property
    def holds_time(self) -> bool:
        return self.status in HOLDING

    @property
    def upcoming(self) -> bool:
        end = self.when.end or self.when.start
        return self.holds_time and end > datetime.now(UTC)

    @property
    def patient_may_change(self) -> bool:
        """Booked, and the cancellation notice has not begun."""
        limit = self.cancellable_until
        return self.booked and (limit is None or datetime.now(UTC) <= limit)

    @property
    def status_actions(self) -> list[tuple[str, str]]:
        """The buttons scheduling would accept now (servicer.too_early): arrived and fulfilled
        from the start of the appointment's day in the clinic, no-show once it was due."""
        now = datetime.now(UTC)
        on_its_day = now >= datetime.combine(self.when.day, time(), self.when.start.tzinfo)
        due = {"noshow": now >= self.when.start}
        return [
            (value, label)
            for value, label, after in STATUS_ACTIONS
            if self.status in after and due.get(value, on_its_day)
        ]

    @property
    def short_patient(self) -> str:
        return self.patient_id[:8]


def appointment_view(item: pb.Appointment, zone: tzinfo) -> AppointmentView:
    until = item.cancellable_until if item.HasField("cancellable_until") else None
    return AppointmentView(
        id=item.id,
        patient_id=item.patient_id,
        provider_id=item.provider_id,
        provider_name=item.provider_name,
        type_name=item.appointment_type_name,
        status=item.status,
        when=when(item.start, item.end, zone),
        cancellable_until=until.ToDatetime(tzinfo=UTC) if until is not None else None,
        cancellation_reason=item.cancellation_reason,
    )


# --- Free times ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotView:
    value: str  # the radio value: "<provider id>|<start epoch seconds>"
    provider_name: str
    when: When


@dataclass(frozen=True)
class SlotDay:
    day: date
    heading: str
    slots: list[SlotView]


def slot_value(provider_id: str, start: Timestamp) -> str:
    return f"{provider_id}|{start.seconds}"


def parse_slot(value: str) -> tuple[str, Timestamp] | None:
    """The provider id and start a radio value names, or None when it names nothing."""
    provider, _, seconds = value.partition("|")
    try:
        provider_id = str(uuid.UUID(provider))
        start = int(seconds)
    except ValueError:
        return None
    if not 0 < start < 2**40:
        return None
    ts = Timestamp()
    ts.FromSeconds(start)
    return provider_id, ts


def by_day(slots: list[pb.Slot], zone: tzinfo) -> list[SlotDay]:
    """Slots (soonest first) grouped under the clinic-local day they start on."""
    days: dict[date, list[SlotView]] = {}
    for slot in slots:
        shown = when(slot.start, slot.end, zone)
        days.setdefault(shown.day, []).append(
            SlotView(slot_value(slot.provider_id, slot.start), slot.provider_name, shown)
        )
    return [SlotDay(day, long_day(day), items) for day, items in days.items()]


def slot_refusal(exc: grpc.aio.AioRpcError) -> str:
    """'SLOT_TAKEN' or 'SLOT_UNAVAILABLE' when the time could not be booked, else ''."""
    if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return ""
    kind = precondition_kind(exc)
    return kind if kind in SLOT_REFUSALS else ""


def alternatives(exc: grpc.aio.AioRpcError) -> list[pb.Slot]:
    """The fresh times a slot refusal carries in its status details."""
    taken = detail_of(exc, pb.SlotTaken)
    return list(taken.alternatives) if taken else []


SLOT_TAKEN_TEXT = (
    "Sorry, that time was just taken by someone else. Here are the next free times instead."
)
SLOT_UNAVAILABLE_TEXT = "That time is no longer offered. Here are the next free times instead."
# Scheduling has not heard of a patient identity registered moments ago (its projection lags).
PATIENT_NOT_READY_TEXT = (
    "This patient was registered moments ago; please try again in a few seconds."
)


def refusal_text(kind: str) -> str:
    return SLOT_TAKEN_TEXT if kind == "SLOT_TAKEN" else SLOT_UNAVAILABLE_TEXT
