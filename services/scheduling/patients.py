"""The patients scheduling knows, kept in step with identity (which owns them) through events.

Staff book only for a patient in this projection; a patient booking for themselves is known
by their signed session. A new durable consumer starts at the stream's first event, so a
deployment that adds it replays every registration.
"""

from __future__ import annotations

import uuid

from portal.events.v1 import identity_pb2
from services.runtime.consumer import Event, Subscription
from services.runtime.db import Conn


async def on_patient_registered(conn: Conn, event: Event) -> None:
    registered = event.decode(identity_pb2.PatientRegistered)
    await conn.execute(
        "INSERT INTO patients (id) VALUES ($1) ON CONFLICT DO NOTHING",
        uuid.UUID(registered.patient_id),
    )


SUBSCRIPTIONS = [
    Subscription(
        durable="scheduling-patient-registered",
        stream="IDENTITY",
        subject="portal.identity.patient.registered",
        handler=on_patient_registered,
    ),
]
