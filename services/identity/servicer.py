"""IdentityService over gRPC: every method checks the principal first (@requires)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from portal.events.v1 import identity_pb2 as events
from portal.identity.v1 import identity_pb2 as pb
from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.identity import audit, convert, patients
from services.runtime.errors import abort_invalid, abort_precondition
from services.runtime.outbox import emit
from services.runtime.principal import Principal, PrincipalCodec, requires

Context = grpc.aio.ServicerContext[Any, Any]
STAFF = True  # any staff role


def now_ts() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


async def parse_patient_id(context: Context, raw: str, field: str = "patient_id") -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        await abort_invalid(context, {field: ["Patient id is not valid."]})


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, pool: asyncpg.Pool, principals: PrincipalCodec) -> None:
        self.pool = pool
        self.principals = principals

    # ------------------------------------------------------------------ patient registry

    @requires(staff=STAFF)
    async def RegisterPatient(
        self, request: pb.RegisterPatientRequest, context: Context, principal: Principal
    ) -> pb.RegisterPatientResponse:
        f = request.fields
        values = patients.clean(
            patients.PatientInput(
                first_name=f.first_name,
                middle_name=f.middle_name,
                last_name=f.last_name,
                date_of_birth=f.date_of_birth,
                sex=f.sex.lower(),
                email=f.email,
                phone=f.phone,
                address=f.address,
            )
        )
        errors = patients.validate(values)
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            if not request.confirm_duplicate and await patients.same_person_exists(conn, values):
                await abort_precondition(
                    context,
                    "DUPLICATE_PATIENT",
                    "A patient with the same name and date of birth already exists.",
                )
            row = await patients.insert(conn, values)
            await emit(
                conn,
                "portal.identity.patient.registered",
                str(row["id"]),
                events.PatientRegistered(
                    patient_id=str(row["id"]), occurred_at=now_ts(), actor_id=principal.subject
                ),
            )
            await audit.record(conn, principal, "patient.register", patient_id=row["id"])
        return pb.RegisterPatientResponse(patient=convert.patient(row))

    @requires(staff=STAFF)
    async def SearchPatients(
        self, request: pb.SearchPatientsRequest, context: Context, principal: Principal
    ) -> pb.SearchPatientsResponse:
        if len(request.query) > 200:
            await abort_invalid(context, {"query": ["Search text is too long."]})
        limit = min(max(request.limit or 25, 1), 100)
        async with self.pool.acquire() as conn:
            rows = await patients.search(conn, request.query, limit)
            await audit.record(conn, principal, "patient.search", detail=f"results={len(rows)}")
        return pb.SearchPatientsResponse(items=[convert.summary(r) for r in rows])

    @requires(staff=STAFF)
    async def GetPatient(
        self, request: pb.GetPatientRequest, context: Context, principal: Principal
    ) -> pb.Patient:
        patient_id = await parse_patient_id(context, request.patient_id)
        async with self.pool.acquire() as conn:
            row = await patients.get(conn, patient_id)
            if row is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such patient")
            accounts = await conn.fetch(
                "SELECT * FROM portal_accounts WHERE patient_id = $1 ORDER BY realm", patient_id
            )
            await audit.record(conn, principal, "patient.read", patient_id=patient_id)
        return convert.patient(row, accounts)
