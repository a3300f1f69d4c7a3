"""Events forms publishes through the outbox (ids only: no answers, names or reasons)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from google.protobuf.timestamp_pb2 import Timestamp

from portal.events.v1 import forms_pb2
from services.runtime.db import Conn
from services.runtime.outbox import emit

CHART_FORM = "portal.forms.chart_form."
CATALOG_UPDATED = "portal.forms.catalog.updated"


def now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


async def chart_form(conn: Conn, event: str, row: asyncpg.Record, kind: str, actor_id: str) -> None:
    """portal.forms.chart_form.<event> for one chart form row (as it is after the change)."""
    message = forms_pb2.ChartFormChanged(
        chart_form_id=str(row["id"]),
        patient_id=str(row["patient_id"]),
        form_id=str(row["form_id"]),
        form_version=row["form_version"],
        kind=kind,
        status=row["status"],
        appointment_id=str(row["appointment_id"] or ""),
        actor_id=actor_id,
        occurred_at=now(),
    )
    if row["due_at"] is not None:
        message.due.FromDatetime(row["due_at"])
    await emit(conn, CHART_FORM + event, str(row["id"]), message)


async def catalog_updated(conn: Conn, form_ids: Sequence[str], actor_id: str) -> None:
    message = forms_pb2.CatalogUpdated(form_ids=form_ids, actor_id=actor_id, occurred_at=now())
    await emit(conn, CATALOG_UPDATED, "catalog", message)
