"""FormsService over gRPC: every method checks the principal first (@requires).

The methods live in small parts: library and catalog (rpc_catalog), chart forms
(rpc_chart_forms), eSignatures (rpc_signatures), medications, documents and records
(rpc_records), refill requests and the work queue (rpc_refills); this class puts them together.
"""

from __future__ import annotations

import grpc

from portal.forms.v1 import forms_pb2 as pb
from services.forms import access
from services.forms.rpc_catalog import CatalogRpc
from services.forms.rpc_common import NO_CHART, STAFF, Context
from services.forms.rpc_records import RecordsRpc
from services.forms.rpc_refills import RefillRpc
from services.forms.rpc_signatures import SignatureRpc
from services.runtime.principal import Principal, requires


class FormsServicer(CatalogRpc, SignatureRpc, RecordsRpc, RefillRpc):
    @requires(staff=STAFF, patient=True)
    async def GetChart(
        self, request: pb.GetChartRequest, context: Context, principal: Principal
    ) -> pb.Chart:
        patient_id = await self.patient_of(context, principal, request.patient_id)
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT patient_id, portal_access, created_at FROM charts WHERE patient_id = $1",
                patient_id,
            )
            await access.record(conn, principal, "chart.read", patient_id)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, NO_CHART)
        chart = pb.Chart(patient_id=str(row["patient_id"]), portal_access=row["portal_access"])
        chart.created_at.FromDatetime(row["created_at"])
        return chart
