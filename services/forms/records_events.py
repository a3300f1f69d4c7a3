"""Events about refills, documents and medications, through the outbox (ids and states only:
no medication names, notes, titles or contents travel in events)."""

from __future__ import annotations

import asyncpg

from portal.events.v1 import forms_pb2
from services.forms.events import now
from services.runtime.db import Conn
from services.runtime.outbox import emit

REFILL = "portal.forms.refill."
DOCUMENT = "portal.forms.document."
MEDICATION = "portal.forms.medication."


async def refill(conn: Conn, event: str, row: asyncpg.Record, actor_id: str) -> None:
    """portal.forms.refill.requested / .decided / .withdrawn"""
    message = forms_pb2.RefillChanged(
        refill_request_id=str(row["chart_form_id"]),
        patient_id=str(row["patient_id"]),
        status=row["status"],
        actor_id=actor_id,
        occurred_at=now(),
    )
    await emit(conn, REFILL + event, str(row["chart_form_id"]), message)


async def document(conn: Conn, event: str, row: asyncpg.Record, actor_id: str) -> None:
    """portal.forms.document.added / .shared / .unshared"""
    message = forms_pb2.DocumentChanged(
        document_id=str(row["id"]),
        patient_id=str(row["patient_id"]),
        category=row["category"],
        origin=row["origin"],
        share_with_patient=row["share_with_patient"],
        actor_id=actor_id,
        occurred_at=now(),
    )
    await emit(conn, DOCUMENT + event, str(row["id"]), message)


async def medication(conn: Conn, event: str, row: asyncpg.Record, actor_id: str) -> None:
    """portal.forms.medication.added / .discontinued"""
    message = forms_pb2.MedicationChanged(
        medication_id=str(row["id"]),
        patient_id=str(row["patient_id"]),
        actor_id=actor_id,
        occurred_at=now(),
    )
    await emit(conn, MEDICATION + event, str(row["id"]), message)
