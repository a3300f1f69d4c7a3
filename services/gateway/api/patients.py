"""The patient registry for staff: register, search, read, update."""

from __future__ import annotations

import uuid

from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api import access, serialize
from services.gateway.api.json_io import (
    Body,
    Member,
    endpoint,
    invalid,
    query_int,
    read_body,
)
from services.gateway.api.serialize import CONTACT_FLAGS
from services.gateway.context import BACKENDS
from services.gateway.demographics import PATIENT_FIELDS
from services.gateway.security import Problem

REQUIRED_FIELDS = ("first_name", "last_name", "date_of_birth", "sex")
REGISTER = {
    **{name: Member(str, required=name in REQUIRED_FIELDS) for name in PATIENT_FIELDS},
    "confirm_duplicate": Member(bool),
}
UPDATE = {
    **{name: Member(str) for name in PATIENT_FIELDS},
    "allow_patient_portal": Member(bool),
    "preferred_contact": Member(str),
    **{name: Member(bool) for name in CONTACT_FLAGS},
}


def patient_id(request: web.Request) -> str:
    """The patient id in the URL; 404 when it cannot name a patient at all."""
    raw = request.match_info["patient_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise Problem(404, "Not found", "No such patient.") from None


def patient_fields(body: Body) -> pb.PatientFields:
    return pb.PatientFields(**{name: body.text(name) for name in PATIENT_FIELDS if name in body})


@endpoint
async def register(request: web.Request) -> web.StreamResponse:
    who = await access.staff(request)
    body = await read_body(request, REGISTER)
    reply = await request.app[BACKENDS].identity.RegisterPatient(
        pb.RegisterPatientRequest(
            fields=patient_fields(body), confirm_duplicate=body.flag("confirm_duplicate")
        ),
        metadata=auth.metadata(request, who),
    )
    found = reply.patient
    return web.json_response(
        serialize.patient(found),
        status=201,
        headers={"Location": f"/api/v1/patients/{found.id}"},
    )


@endpoint
async def search(request: web.Request) -> web.StreamResponse:
    who = await access.staff(request)
    limit = query_int(request, "limit", default=20, low=1, high=100)
    reply = await request.app[BACKENDS].identity.SearchPatients(
        pb.SearchPatientsRequest(query=request.query.get("q", "").strip(), limit=limit),
        metadata=auth.metadata(request, who),
    )
    return web.json_response({"items": [serialize.summary(item) for item in reply.items]})


@endpoint
async def read(request: web.Request) -> web.StreamResponse:
    who = await access.staff(request)
    found = await request.app[BACKENDS].identity.GetPatient(
        pb.GetPatientRequest(patient_id=patient_id(request)),
        metadata=auth.metadata(request, who),
    )
    return web.json_response(serialize.patient(found))


@endpoint
async def update(request: web.Request) -> web.StreamResponse:
    who = await access.staff(request)
    target = patient_id(request)
    body = await read_body(request, UPDATE)
    if not body.keys():
        raise invalid({}, "Send at least one member to change.")
    found = await request.app[BACKENDS].identity.UpdatePatient(
        pb.UpdatePatientRequest(
            patient_id=target,
            fields=patient_fields(body),
            update_mask=body.keys(),  # only what was sent changes
            allow_patient_portal=body.flag("allow_patient_portal"),
            preferred_contact=body.text("preferred_contact"),
            **{name: body.flag(name) for name in CONTACT_FLAGS},
        ),
        metadata=auth.metadata(request, who),
    )
    return web.json_response(serialize.patient(found))


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/patients", register),
        web.get("/api/v1/patients", search, allow_head=False),
        web.get("/api/v1/patients/{patient_id}", read, allow_head=False),
        web.patch("/api/v1/patients/{patient_id}", update),
    ]
