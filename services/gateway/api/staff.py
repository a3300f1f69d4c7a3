"""Staff sessions: sign in for a Bearer token, sign out."""

from __future__ import annotations

import grpc

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api import access, mfa
from services.gateway.api.json_io import timestamp
from services.gateway.api.models import StaffSession, StaffSignIn, StaffUser
from services.gateway.api.operation import Answer, Call, Operation, Reply
from services.gateway.context import BACKENDS


async def sign_in(call: Call[StaffSignIn, None]) -> Reply:
    request, body = call.request, call.body
    try:
        grant = await request.app[BACKENDS].identity.StaffSignIn(
            pb.SignInRequest(
                username=body.username,
                password=body.password,
                user_agent=auth.user_agent(request),
            ),
            metadata=auth.gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in access.REFUSED:
            raise access.sign_in_refused() from None
        raise
    if grant.mfa_challenge:
        return mfa.challenge_answer(grant)
    return staff_session(grant)


async def sign_in_mfa(call: Call[mfa.MfaSignIn, None]) -> Reply:
    return staff_session(await mfa.complete(call, pb.SESSION_KIND_STAFF))


def staff_session(grant: pb.SessionGrant) -> Reply:
    session = grant.session
    answer = StaffSession(
        token=grant.token,
        expires_at=timestamp(session.expires_at),
        staff=StaffUser(
            id=session.staff_user_id,
            username=session.username,
            display_name=session.display_name,
            role=auth.ROLE_NAME.get(session.role, ""),  # type: ignore[arg-type]
        ),
        must_change_password=session.must_change_password,
        mfa_enrolment_required=session.must_enrol_mfa and not session.must_change_password,
    )
    return Reply(answer, status=201)


async def sign_out(call: Call[None, None]) -> Reply:
    await auth.end_session(call.request, call.caller.token)
    return Reply(status=204)


def operations() -> list[Operation]:
    return [
        Operation(
            "POST",
            "/api/v1/staff/sessions",
            sign_in,
            operation_id="staffSignIn",
            summary="Staff sign-in: a Bearer token for the staff routes",
            tag="staff",
            security="none",
            body=StaffSignIn,
            rate_limited=True,
            answers=(Answer(201, "Signed in.", StaffSession), mfa.CHALLENGE_ANSWER),
            problems=(401,),
        ),
        Operation(
            "POST",
            "/api/v1/staff/sessions/mfa",
            sign_in_mfa,
            operation_id="staffSignInSecondFactor",
            summary="Second step of a staff sign-in: the challenge and a code",
            tag="staff",
            security="none",
            body=mfa.MfaSignIn,
            rate_limited=True,
            answers=(Answer(201, "Signed in.", StaffSession),),
            problems=(401,),
        ),
        Operation(
            "DELETE",
            "/api/v1/staff/sessions/current",
            sign_out,
            operation_id="staffSignOut",
            summary="End the staff session of the Bearer token",
            tag="staff",
            security="staff",
            password_change=True,
            mfa_enrolment=True,
            answers=(Answer(204, "Signed out."),),
        ),
    ]
