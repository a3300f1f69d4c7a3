"""Portal credentials for staff: issue a realm's first credentials, reset them.

The plain password is in the answer exactly once; identity keeps only its hash, so lost
credentials can only be reset, never shown again.
"""

from __future__ import annotations

from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api.json_io import timestamp
from services.gateway.api.models import (
    CredentialsRequest,
    IssuedCredentials,
    NoBody,
    ResetCredentials,
)
from services.gateway.api.operation import Answer, Call, Operation, Reply, patient_id
from services.gateway.context import BACKENDS, SETTINGS


def portal_url(request: web.Request, realm: str) -> str:
    settings = request.app[SETTINGS]
    return settings.onsite_url if realm == "onsite" else settings.offsite_url


async def issue(call: Call[CredentialsRequest, None]) -> Reply:
    target, realm = patient_id(call), call.params["realm"]
    issued = await call.request.app[BACKENDS].identity.IssueCredentials(
        pb.IssueCredentialsRequest(
            patient_id=target,
            realm=auth.REALM_ENUM[realm],
            username=call.body.username.strip(),
            password=call.body.password,
        ),
        metadata=auth.metadata(call.request, call.caller),
    )
    answer = IssuedCredentials(
        patient_id=issued.patient_id or target,
        realm=realm,  # type: ignore[arg-type]
        username=issued.username,
        password=issued.password,
        temporary=issued.temporary,
        expires_at=timestamp(issued.expires_at),
        portal_url=portal_url(call.request, realm),
        patient_name=issued.patient_name,
    )
    return Reply(answer, status=201)


async def reset(call: Call[NoBody, None]) -> Reply:
    target, realm = patient_id(call), call.params["realm"]
    issued = await call.request.app[BACKENDS].identity.ResetCredentials(
        pb.ResetCredentialsRequest(patient_id=target, realm=auth.REALM_ENUM[realm]),
        metadata=auth.metadata(call.request, call.caller),
    )
    answer = ResetCredentials(
        patient_id=issued.patient_id or target,
        realm=realm,  # type: ignore[arg-type]
        username=issued.username,
        temporary_password=issued.password,
        expires_at=timestamp(issued.expires_at),
        portal_url=portal_url(call.request, realm),
        patient_name=issued.patient_name,
    )
    return Reply(answer)


BASE = "/api/v1/patients/{patient_id}/portal-credentials/{realm:onsite|offsite}"


def operations() -> list[Operation]:
    return [
        Operation(
            "POST",
            BASE,
            issue,
            operation_id="issuePortalCredentials",
            summary="Create the realm's portal credentials (temporary password)",
            tag="credentials",
            security="staff",
            body=CredentialsRequest,
            body_required=False,
            answers=(
                Answer(201, "Issued; the password is in this answer only.", IssuedCredentials),
            ),
            problems=(409,),
        ),
        Operation(
            "POST",
            BASE + "/reset",
            reset,
            operation_id="resetPortalCredentials",
            summary="A new temporary password; ends every session of the account",
            tag="credentials",
            security="staff",
            body=NoBody,
            body_required=False,
            answers=(Answer(200, "Reset; the password is in this answer only.", ResetCredentials),),
            problems=(409,),
        ),
    ]
