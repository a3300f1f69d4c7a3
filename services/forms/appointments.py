"""Visit forms follow appointments: scheduling's events place, withdraw and re-date them.

  portal.scheduling.appointment.booked       the type's visit forms, due at the start, once
  portal.scheduling.appointment.cancelled    those not started yet are withdrawn
  portal.scheduling.appointment.rescheduled  their due date moves to the new start

One durable consumer takes all of them, so they are handled in the order scheduling wrote them
(status changes such as arrived or noshow leave the forms as they are). The payload of each is
scheduling's AppointmentChanged (portal/events/v1/scheduling.proto).
"""

from __future__ import annotations

import uuid
from datetime import UTC

from portal.events.v1.scheduling_pb2 import AppointmentChanged
from services.forms import access, catalog, events
from services.runtime.consumer import Event, Subscription
from services.runtime.db import Conn

SUBJECT = "portal.scheduling.appointment.*"


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            durable="forms-appointments",
            stream="SCHEDULING",
            subject=SUBJECT,
            handler=handle,
        )
    ]


async def handle(conn: Conn, event: Event) -> None:
    what = event.subject.rsplit(".", 1)[-1]
    appointment = event.decode(AppointmentChanged)
    if what == "booked":
        await booked(conn, appointment)
    elif what == "cancelled":
        await cancelled(conn, appointment)
    elif what == "rescheduled":
        await rescheduled(conn, appointment)


async def booked(conn: Conn, appointment: AppointmentChanged) -> None:
    patient_id = uuid.UUID(appointment.patient_id)
    appointment_id = uuid.UUID(appointment.appointment_id)
    # The chart and its visit forms in one statement (most types have no visit forms).
    rows = await conn.fetch(
        """WITH chart AS (
               INSERT INTO charts (patient_id) VALUES ($1) ON CONFLICT DO NOTHING)
           INSERT INTO chart_forms (patient_id, form_id, form_version, origin, appointment_id,
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
    if not rows:
        return
    kinds = await catalog.existing(conn, [r["form_id"] for r in rows])
    for row in rows:
        await access.record_system(
            conn, "chart_form.assigned", patient_id, row["id"], f"appointment {appointment_id}"
        )
        await events.chart_form(conn, "assigned", row, kinds[row["form_id"]], "")


async def cancelled(conn: Conn, appointment: AppointmentChanged) -> None:
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


async def rescheduled(conn: Conn, appointment: AppointmentChanged) -> None:
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
