"""Charts: forms' record of each patient, kept in step with identity through events."""

from __future__ import annotations

import uuid

from google.protobuf.timestamp_pb2 import Timestamp

from portal.events.v1 import forms_pb2, identity_pb2
from services.forms import access, catalog, events
from services.runtime.consumer import Event, Subscription
from services.runtime.db import Conn
from services.runtime.outbox import emit


async def on_patient_registered(conn: Conn, event: Event) -> None:
    registered = event.decode(identity_pb2.PatientRegistered)
    patient_id = uuid.UUID(registered.patient_id)
    created = await conn.fetchval(
        "INSERT INTO charts (patient_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
        patient_id,
    )
    if created:
        occurred = Timestamp()
        occurred.GetCurrentTime()
        await emit(
            conn,
            "portal.forms.chart.opened",
            str(patient_id),
            forms_pb2.ChartOpened(patient_id=str(patient_id), occurred_at=occurred),
        )


async def on_portal_access_changed(conn: Conn, event: Event) -> None:
    """Follow the grant; on a grant, place the portal's consent forms in the chart (once)."""
    changed = event.decode(identity_pb2.PortalAccessChanged)
    patient_id = uuid.UUID(changed.patient_id)
    await catalog.lock_placement(conn)
    await conn.execute(
        """INSERT INTO charts (patient_id, portal_access) VALUES ($1, $2)
           ON CONFLICT (patient_id) DO UPDATE SET portal_access = $2, updated_at = now()""",
        patient_id,
        changed.allowed,
    )
    if not changed.allowed:
        return
    for row in await catalog.place_portal_consents(conn, patient_id):
        await access.record_system(
            conn, "chart_form.assigned", patient_id, row["id"], "portal access"
        )
        await events.chart_form(conn, "assigned", row, "consent", changed.actor_id)


SUBSCRIPTIONS = [
    Subscription(
        durable="forms-patient-registered",
        stream="IDENTITY",
        subject="portal.identity.patient.registered",
        handler=on_patient_registered,
    ),
    Subscription(
        durable="forms-portal-access",
        stream="IDENTITY",
        subject="portal.identity.portal_access.*",
        handler=on_portal_access_changed,
    ),
]
