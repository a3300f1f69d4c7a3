"""The patient registry for staff: register, search, read, update."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api import serialize
from services.gateway.api.models import (
    NewPatient,
    Patient,
    PatientChanges,
    PatientList,
    PatientQuery,
)
from services.gateway.api.operation import (
    Answer,
    Call,
    Header,
    Operation,
    Reply,
    not_found,
    patient_id,
)
from services.gateway.context import BACKENDS
from services.gateway.demographics import PATIENT_FIELDS

T = TypeVar("T")


def patient_fields(values: dict[str, Any]) -> pb.PatientFields:
    return pb.PatientFields(**{name: values[name] for name in PATIENT_FIELDS if name in values})


def identity_patient(call: Call[Any, Any], target: str) -> Awaitable[pb.Patient]:
    """Identity's record of patient `target` (identity owns patients; NOT_FOUND: no such one)."""
    return call.request.app[BACKENDS].identity.GetPatient(
        pb.GetPatientRequest(patient_id=target),
        metadata=auth.metadata(call.request, call.caller),
    )


async def of_known_patient(call: Call[Any, Any], target: str, pending: Awaitable[T]) -> T:
    """`pending`'s answer about patient `target`, or 404 when identity (which owns patients)
    knows no such patient: another service answers an empty list for an id it has not heard
    of. Both calls run at once, so the check adds no wait."""
    known, answer = await asyncio.gather(
        identity_patient(call, target), pending, return_exceptions=True
    )
    if isinstance(known, grpc.aio.AioRpcError) and known.code() == grpc.StatusCode.NOT_FOUND:
        raise not_found("patient")
    if isinstance(known, BaseException):
        raise known
    if isinstance(answer, BaseException):
        raise answer
    return answer


async def register(call: Call[NewPatient, None]) -> Reply:
    body = call.body
    reply = await call.request.app[BACKENDS].identity.RegisterPatient(
        pb.RegisterPatientRequest(
            fields=patient_fields(body.model_dump()), confirm_duplicate=body.confirm_duplicate
        ),
        metadata=auth.metadata(call.request, call.caller),
    )
    found = reply.patient
    return Reply(
        serialize.patient(found),
        status=201,
        headers={"Location": f"/api/v1/patients/{found.id}"},
    )


async def search(call: Call[None, PatientQuery]) -> Reply:
    reply = await call.request.app[BACKENDS].identity.SearchPatients(
        pb.SearchPatientsRequest(query=call.query.q.strip(), limit=call.query.limit),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(PatientList(items=[serialize.summary(item) for item in reply.items]))


async def read(call: Call[None, None]) -> Reply:
    found = await call.request.app[BACKENDS].identity.GetPatient(
        pb.GetPatientRequest(patient_id=patient_id(call)),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(serialize.patient(found))


async def update(call: Call[PatientChanges, None]) -> Reply:
    body = call.body
    sent = body.model_dump(include=body.model_fields_set)
    found = await call.request.app[BACKENDS].identity.UpdatePatient(
        pb.UpdatePatientRequest(
            patient_id=patient_id(call),
            fields=patient_fields(sent),
            update_mask=sorted(sent),  # only what was sent changes
            allow_patient_portal=body.allow_patient_portal,
            preferred_contact=body.preferred_contact,
            allow_email=body.allow_email,
            allow_sms=body.allow_sms,
            allow_voice=body.allow_voice,
        ),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(serialize.patient(found))


BASE = "/api/v1/patients"


def operations() -> list[Operation]:
    return [
        Operation(
            "POST",
            BASE,
            register,
            operation_id="registerPatient",
            summary="Register a patient",
            tag="patients",
            security="staff",
            body=NewPatient,
            answers=(
                Answer(
                    201,
                    "Registered.",
                    Patient,
                    headers={"Location": Header("The new patient's URL.", True, "uri-reference")},
                ),
            ),
            problems=(409,),
        ),
        Operation(
            "GET",
            BASE,
            search,
            operation_id="searchPatients",
            summary="Find patients by name (typo-tolerant), date of birth, chart number or id",
            tag="patients",
            security="staff",
            query=PatientQuery,
            answers=(Answer(200, "Matches.", PatientList),),
        ),
        Operation(
            "GET",
            BASE + "/{patient_id}",
            read,
            operation_id="getPatient",
            summary="A patient with the portal account of each realm",
            tag="patients",
            security="staff",
            answers=(Answer(200, "The patient.", Patient),),
        ),
        Operation(
            "PATCH",
            BASE + "/{patient_id}",
            update,
            operation_id="updatePatient",
            summary="Change the members sent (and only those)",
            tag="patients",
            security="staff",
            body=PatientChanges,
            answers=(Answer(200, "The changed patient.", Patient),),
        ),
    ]
