"""Staff sessions: sign in for a Bearer token, sign out."""

from __future__ import annotations

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api import access
from services.gateway.api.json_io import Member, endpoint, read_body, timestamp
from services.gateway.context import BACKENDS

SIGN_IN = {"username": Member(str, required=True), "password": Member(str, required=True)}


@endpoint
async def sign_in(request: web.Request) -> web.StreamResponse:
    access.sign_in_allowed(request)
    body = await read_body(request, SIGN_IN)
    try:
        grant = await request.app[BACKENDS].identity.StaffSignIn(
            pb.SignInRequest(username=body.text("username"), password=body.text("password")),
            metadata=auth.gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in access.REFUSED:
            raise access.sign_in_refused() from None
        raise
    session = grant.session
    return web.json_response(
        {
            "token": grant.token,
            "expires_at": timestamp(session.expires_at),
            "staff": {
                "id": session.staff_user_id,
                "username": session.username,
                "display_name": session.display_name,
                "role": auth.ROLE_NAME.get(session.role, ""),
            },
        },
        status=201,
    )


@endpoint
async def sign_out(request: web.Request) -> web.StreamResponse:
    who = await access.staff(request)
    await auth.end_session(request, who.token)
    return web.Response(status=204)


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/v1/staff/sessions", sign_in),
        web.delete("/api/v1/staff/sessions/current", sign_out),
    ]
