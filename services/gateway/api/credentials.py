"""Portal credentials for staff: issue a realm's first credentials, reset them.

The plain password is in the answer exactly once; identity keeps only its hash, so lost
credentials can only be reset, never shown again.
"""

from __future__ import annotations

from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api import access
from services.gateway.api.json_io import Member, endpoint, read_body, timestamp
from services.gateway.api.patients import patient_id
from services.gateway.context import BACKENDS, SETTINGS

ISSUE = {"username": Member(str, max_length=200), "password": Member(str, max_length=1000)}


def portal_url(request: web.Request, realm: str) -> str:
    settings = request.app[SETTINGS]
    return settings.onsite_url if realm == "onsite" else settings.offsite_url


@endpoint
async def issue(request: web.Request) -> web.StreamResponse:
    who = await access.staff(request)
    target, realm = patient_id(request), request.match_info["realm"]
    body = await read_body(request, ISSUE, optional=True)
    issued = await request.app[BACKENDS].identity.IssueCredentials(
        pb.IssueCredentialsRequest(
            patient_id=target,
            realm=auth.REALM_ENUM[realm],
            username=body.text("username").strip(),
            password=body.text("password"),
        ),
        metadata=auth.metadata(request, who),
    )
    return web.json_response(
        {
            "patient_id": issued.patient_id or target,
            "realm": realm,
            "username": issued.username,
            "password": issued.password,
            "temporary": issued.temporary,
            "expires_at": timestamp(issued.expires_at),
            "portal_url": portal_url(request, realm),
            "patient_name": issued.patient_name,
        },
        status=201,
    )


@endpoint
async def reset(request: web.Request) -> web.StreamResponse:
    who = await access.staff(request)
    target, realm = patient_id(request), request.match_info["realm"]
    await read_body(request, {}, optional=True)  # nothing to send; reject what is sent
    issued = await request.app[BACKENDS].identity.ResetCredentials(
        pb.ResetCredentialsRequest(patient_id=target, realm=auth.REALM_ENUM[realm]),
        metadata=auth.metadata(request, who),
    )
    return web.json_response(
        {
            "patient_id": issued.patient_id or target,
            "realm": realm,
            "username": issued.username,
            "temporary_password": issued.password,
            "expires_at": timestamp(issued.expires_at),
            "portal_url": portal_url(request, realm),
            "patient_name": issued.patient_name,
        }
    )


BASE = "/api/v1/patients/{patient_id}/portal-credentials/{realm:onsite|offsite}"


def routes() -> list[web.RouteDef]:
    return [
        web.post(BASE, issue),
        web.post(BASE + "/reset", reset),
    ]
