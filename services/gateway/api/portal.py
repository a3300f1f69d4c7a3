"""The patient's own API: sign in to a realm, change the password, read the profile, sign out.

The patient is always the one the session names; no route here takes a patient id.
"""

from __future__ import annotations

import grpc

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api import access, mfa, serialize
from services.gateway.api.json_io import from_rpc, timestamp
from services.gateway.api.models import (
    MyProfile,
    PasswordChange,
    PatientSignIn,
    PortalSession,
)
from services.gateway.api.operation import Answer, Call, Header, Operation, Reply
from services.gateway.context import BACKENDS

# The header that carries the new token after a password change (the old one has ended).
TOKEN_HEADER = "X-Session-Token"  # noqa: S105 (a header name)
EXPIRES_HEADER = "X-Session-Expires-At"


async def sign_in(call: Call[PatientSignIn, None]) -> Reply:
    request, realm = call.request, call.params["realm"]
    try:
        grant = await request.app[BACKENDS].identity.PatientSignIn(
            pb.PatientSignInRequest(
                realm=auth.REALM_ENUM[realm],
                username=call.body.username.strip(),
                password=call.body.password,
                user_agent=auth.user_agent(request),
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
    if grant.mfa_challenge:
        return mfa.challenge_answer(grant)
    return portal_session(grant, realm)


async def sign_in_mfa(call: Call[mfa.MfaSignIn, None]) -> Reply:
    realm = call.params["realm"]
    return portal_session(await mfa.complete(call, pb.SESSION_KIND_PATIENT, realm), realm)


def portal_session(grant: pb.SessionGrant, realm: str) -> Reply:
    answer = PortalSession(
        token=grant.token,
        realm=realm,  # type: ignore[arg-type]
        must_change_password=grant.session.must_change_password,
        expires_at=timestamp(grant.session.expires_at),
    )
    return Reply(answer, status=201)


async def change_password(call: Call[PasswordChange, None]) -> Reply:
    grant = await call.request.app[BACKENDS].identity.ChangePassword(
        pb.ChangePasswordRequest(
            current_password=call.body.current_password,
            new_password=call.body.new_password,
        ),
        metadata=auth.metadata(call.request, call.caller),
    )
    headers = {TOKEN_HEADER: grant.token}
    expires = timestamp(grant.session.expires_at)
    if expires:
        headers[EXPIRES_HEADER] = expires
    return Reply(status=204, headers=headers)


async def me(call: Call[None, None]) -> Reply:
    # One call: identity resolved the session and read (and audited) the record together.
    who = call.caller
    found = who.session.own_profile
    if not who.session.HasField("own_profile"):  # gone since the session was found
        found = await call.request.app[BACKENDS].identity.GetMyProfile(
            pb.GetMyProfileRequest(), metadata=auth.metadata(call.request, who)
        )
    return Reply(serialize.my_profile(found, who.session))


async def sign_out(call: Call[None, None]) -> Reply:
    await auth.end_session(call.request, call.caller.token)
    return Reply(status=204)


def operations() -> list[Operation]:
    return [
        Operation(
            "POST",
            "/api/v1/portal/{realm:onsite|offsite}/sessions",
            sign_in,
            operation_id="patientSignIn",
            summary="Patient sign-in to one realm (its credentials open only that realm)",
            tag="portal",
            security="none",
            body=PatientSignIn,
            rate_limited=True,
            answers=(Answer(201, "Signed in.", PortalSession), mfa.CHALLENGE_ANSWER),
            problems=(401, 409),
        ),
        Operation(
            "POST",
            "/api/v1/portal/{realm:onsite|offsite}/sessions/mfa",
            sign_in_mfa,
            operation_id="patientSignInSecondFactor",
            summary="Second step of a patient sign-in: the challenge and a code",
            tag="portal",
            security="none",
            body=mfa.MfaSignIn,
            rate_limited=True,
            answers=(Answer(201, "Signed in.", PortalSession),),
            problems=(401,),
        ),
        Operation(
            "POST",
            "/api/v1/portal/password",
            change_password,
            operation_id="changeMyPassword",
            summary="Change the password (also while a change is pending)",
            description="The session of the Bearer token ends; the new session's token is in "
            "the `X-Session-Token` header of the 204 answer.",
            tag="portal",
            security="pending-patient",
            body=PasswordChange,
            answers=(
                Answer(
                    204,
                    "Changed. Use the new token from now on.",
                    headers={
                        TOKEN_HEADER: Header("The new session's Bearer token.", True),
                        EXPIRES_HEADER: Header(
                            "When the new session ends at the latest.", False, "date-time"
                        ),
                    },
                ),
            ),
        ),
        Operation(
            "GET",
            "/api/v1/portal/me",
            me,
            operation_id="getMyProfile",
            summary="The signed-in patient's own record",
            tag="portal",
            security="patient",
            own_profile=True,
            answers=(Answer(200, "The profile.", MyProfile),),
        ),
        Operation(
            "DELETE",
            "/api/v1/portal/sessions/current",
            sign_out,
            operation_id="patientSignOut",
            summary="End the patient session of the Bearer token",
            tag="portal",
            security="pending-patient",
            answers=(Answer(204, "Signed out."),),
        ),
    ]
