"""The patient's own API: sign in to a realm, change the password, read the profile, sign out.

The patient is always the one the session names; no route here takes a patient id.
"""

from __future__ import annotations

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api import access, serialize
from services.gateway.api.json_io import Member, endpoint, from_rpc, read_body, timestamp
from services.gateway.context import BACKENDS

SIGN_IN = {
    "username": Member(str, required=True, max_length=200),
    "password": Member(str, required=True, max_length=1000),
}
CHANGE = {
    "current_password": Member(str, required=True, max_length=1000),
    "new_password": Member(str, required=True, max_length=1000),
}
# The header that carries the new token after a password change (the old one has ended).
TOKEN_HEADER = "X-Session-Token"  # noqa: S105 (a header name)
EXPIRES_HEADER = "X-Session-Expires-At"


@endpoint
async def sign_in(request: web.Request) -> web.StreamResponse:
    realm = request.match_info["realm"]
    access.sign_in_allowed(request)
    body = await read_body(request, SIGN_IN)
    try:
        grant = await request.app[BACKENDS].identity.PatientSignIn(
            pb.PatientSignInRequest(
                realm=auth.REALM_ENUM[realm],
                username=body.text("username").strip(),
                password=body.text("password"),
            ),
            metadata=auth.gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        problem = from_rpc(exc)
        if problem is not None and problem.code == "TEMPORARY_PASSWORD_EXPIRED":
            raise problem from None  # 409: the password was right, but it has expired
        if exc.code() in access.REFUSED:
            raise access.sign_in_refused() from None
        raise
    return web.json_response(
        {
            "token": grant.token,
            "realm": realm,
            "must_change_password": grant.session.must_change_password,
            "expires_at": timestamp(grant.session.expires_at),
        },
        status=201,
    )


@endpoint
async def change_password(request: web.Request) -> web.StreamResponse:
    who = await access.patient(request, allow_pending=True)
    body = await read_body(request, CHANGE)
    grant = await request.app[BACKENDS].identity.ChangePassword(
        pb.ChangePasswordRequest(
            current_password=body.text("current_password"),
            new_password=body.text("new_password"),
        ),
        metadata=auth.metadata(request, who),
    )
    headers = {TOKEN_HEADER: grant.token}
    expires = timestamp(grant.session.expires_at)
    if expires:
        headers[EXPIRES_HEADER] = expires
    return web.Response(status=204, headers=headers)


@endpoint
async def me(request: web.Request) -> web.StreamResponse:
    # One call: identity resolves the session and reads (and audits) the record together.
    who = await access.patient(request, with_own_profile=True)
    found = who.session.own_profile
    if not who.session.HasField("own_profile"):  # gone since the session was found
        found = await request.app[BACKENDS].identity.GetMyProfile(
            pb.GetMyProfileRequest(), metadata=auth.metadata(request, who)
        )
    body = serialize.demographics(found)
    body["account"] = {
        "realm": auth.REALM_NAME.get(who.session.realm, ""),
        "username": who.session.username,
    }
    return web.json_response(body)


@endpoint
async def sign_out(request: web.Request) -> web.StreamResponse:
    who = await access.patient(request, allow_pending=True)
    await auth.end_session(request, who.token)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/portal/{realm:onsite|offsite}/sessions", sign_in),
        web.post("/api/v1/portal/password", change_password),
        web.get("/api/v1/portal/me", me, allow_head=False),
        web.delete("/api/v1/portal/sessions/current", sign_out),
    ]
