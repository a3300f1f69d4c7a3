"""SchedulingService over gRPC: every method checks the principal first (@requires)."""

from __future__ import annotations

from typing import Any

import asyncpg
import grpc

from portal.scheduling.v1 import scheduling_pb2 as pb
from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.runtime.principal import Principal, PrincipalVerifier, requires

Context = grpc.aio.ServicerContext[Any, Any]


class SchedulingServicer(pb_grpc.SchedulingServiceServicer):
    def __init__(self, pool: asyncpg.Pool, principals: PrincipalVerifier) -> None:
        self.pool = pool
        self.principals = principals

    @requires(staff=True, patient=True)
    async def ListAppointmentTypes(
        self, request: pb.ListAppointmentTypesRequest, context: Context, principal: Principal
    ) -> pb.ListAppointmentTypesResponse:
        only_bookable = request.portal_bookable_only or principal.is_patient
        rows = await self.pool.fetch(
            """SELECT id, name, duration_minutes, portal_bookable FROM appointment_types
               WHERE portal_bookable OR NOT $1 ORDER BY name""",
            only_bookable,
        )
        return pb.ListAppointmentTypesResponse(
            items=[
                pb.AppointmentType(
                    id=str(r["id"]),
                    name=r["name"],
                    duration_minutes=r["duration_minutes"],
                    portal_bookable=r["portal_bookable"],
                )
                for r in rows
            ]
        )
