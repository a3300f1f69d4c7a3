"""FormsService over gRPC: every method checks the principal first (@requires)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import grpc

from portal.forms.v1 import forms_pb2 as pb
from portal.forms.v1 import forms_pb2_grpc as pb_grpc
from services.runtime.errors import abort_invalid
from services.runtime.principal import Principal, PrincipalCodec, requires

Context = grpc.aio.ServicerContext[Any, Any]


class FormsServicer(pb_grpc.FormsServiceServicer):
    def __init__(self, pool: asyncpg.Pool, principals: PrincipalCodec) -> None:
        self.pool = pool
        self.principals = principals

    @requires(staff=True, patient=True)
    async def GetChart(
        self, request: pb.GetChartRequest, context: Context, principal: Principal
    ) -> pb.Chart:
        # A patient reads only their own chart, whatever id the request carries.
        raw = principal.subject if principal.is_patient else request.patient_id
        try:
            patient_id = uuid.UUID(raw)
        except ValueError:
            await abort_invalid(context, {"patient_id": ["Patient id is not valid."]})
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT patient_id, portal_access, created_at FROM charts WHERE patient_id = $1",
                patient_id,
            )
            await conn.execute(
                """INSERT INTO access_log (actor_kind, actor_id, patient_id, action, source_address)
                   VALUES ($1, $2, $3, 'chart.read', $4)""",
                principal.kind,
                principal.subject,
                patient_id,
                principal.source,
            )
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no chart for this patient")
        chart = pb.Chart(patient_id=str(row["patient_id"]), portal_access=row["portal_access"])
        chart.created_at.FromDatetime(row["created_at"])
        return chart
