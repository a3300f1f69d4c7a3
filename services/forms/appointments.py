"""Visit forms follow appointments: scheduling's events place, withdraw and re-date them.

  portal.scheduling.appointment.booked       the type's visit forms, due at the start, once
  portal.scheduling.appointment.cancelled    those not started yet are withdrawn
  portal.scheduling.appointment.rescheduled  their due date moves to the new start

One durable consumer takes all three, so they are handled in the order scheduling wrote them.
The payloads are scheduling's AppointmentBooked / AppointmentCancelled / AppointmentRescheduled
(portal/events/v1/scheduling.proto); until that file defines them the subscription is left out
(`scheduling_messages()` returns None) and tests pass their own copies.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol, cast

from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp

from portal.events.v1 import scheduling_pb2
from services.forms import access, catalog, events
from services.runtime.consumer import Event, Subscription
from services.runtime.db import Conn

log = logging.getLogger(__name__)

SUBJECT = "portal.scheduling.appointment.*"
MESSAGE_NAMES = ("AppointmentBooked", "AppointmentCancelled", "AppointmentRescheduled")


class Appointment(Protocol):
    appointment_id: str
    patient_id: str
    appointment_type_id: str

    @property
    def start(self) -> Timestamp: ...


@dataclass(frozen=True)
class AppointmentMessages:
    booked: type[Message]
    cancelled: type[Message]
    rescheduled: type[Message]


def scheduling_messages() -> AppointmentMessages | None:
    """Scheduling's event messages, or None while scheduling.proto does not define them."""
    by_name = scheduling_pb2.DESCRIPTOR.message_types_by_name
    found = [by_name.get(name) for name in MESSAGE_NAMES]
    if any(d is None for d in found):
        return None
    booked, cancelled, rescheduled = (GetMessageClass(d) for d in found if d is not None)
    return AppointmentMessages(booked, cancelled, rescheduled)


def subscriptions(messages: AppointmentMessages | None) -> list[Subscription]:
    if messages is None:
        log.warning("scheduling events are not defined yet: visit forms are not placed")
        return []
    return [
        Subscription(
            durable="forms-appointments",
            stream="SCHEDULING",
            subject=SUBJECT,
            handler=AppointmentHandler(messages).handle,
        )
    ]


class AppointmentHandler:
    def __init__(self, messages: AppointmentMessages) -> None:
        self.messages = messages

    async def handle(self, conn: Conn, event: Event) -> None:
        what = event.subject.rsplit(".", 1)[-1]
        if what == "booked":
            await booked(conn, cast(Appointment, event.decode(self.messages.booked)))
        elif what == "cancelled":
            await cancelled(conn, cast(Appointment, event.decode(self.messages.cancelled)))
        elif what == "rescheduled":
            await rescheduled(conn, cast(Appointment, event.decode(self.messages.rescheduled)))


async def booked(conn: Conn, appointment: Appointment) -> None:
    patient_id = uuid.UUID(appointment.patient_id)
    appointment_id = uuid.UUID(appointment.appointment_id)
    await conn.execute(
        "INSERT INTO charts (patient_id) VALUES ($1) ON CONFLICT DO NOTHING", patient_id
    )
    rows = await conn.fetch(
        """INSERT INTO chart_forms (patient_id, form_id, form_version, origin, appointment_id,
                                    due_at, assigned_by)
           SELECT $1, f.id, f.current_version, 'appointment', $2, $4, 'appointment'
           FROM visit_forms vf JOIN forms f ON f.id = vf.form_id
           WHERE vf.appointment_type_id = $3
           ORDER BY vf.position
           ON CONFLICT (appointment_id, form_id) WHERE appointment_id IS NOT NULL DO NOTHING
           RETURNING *""",
        patient_id,
        appointment_id,
        uuid.UUID(appointment.appointment_type_id),
        appointment.start.ToDatetime(tzinfo=UTC),
    )
    kinds = await catalog.existing(conn, [r["form_id"] for r in rows])
    for row in rows:
        await access.record_system(
            conn, "chart_form.assigned", patient_id, row["id"], f"appointment {appointment_id}"
        )
        await events.chart_form(conn, "assigned", row, kinds[row["form_id"]], "")


async def cancelled(conn: Conn, appointment: Appointment) -> None:
    appointment_id = uuid.UUID(appointment.appointment_id)
    rows = await conn.fetch(
        """UPDATE chart_forms SET status = 'withdrawn', updated_at = now()
           WHERE appointment_id = $1 AND status = 'not-started' RETURNING *""",
        appointment_id,
    )
    kinds = await catalog.existing(conn, [r["form_id"] for r in rows])
    for row in rows:
        await access.record_system(
            conn, "chart_form.withdrawn", row["patient_id"], row["id"], "appointment cancelled"
        )
        await events.chart_form(conn, "withdrawn", row, kinds[row["form_id"]], "")


async def rescheduled(conn: Conn, appointment: Appointment) -> None:
    rows = await conn.fetch(
        """UPDATE chart_forms SET due_at = $2, updated_at = now()
           WHERE appointment_id = $1 AND status <> 'withdrawn' RETURNING id, patient_id""",
        uuid.UUID(appointment.appointment_id),
        appointment.start.ToDatetime(tzinfo=UTC),
    )
    for row in rows:
        await access.record_system(
            conn, "chart_form.due_moved", row["patient_id"], row["id"], "appointment rescheduled"
        )
