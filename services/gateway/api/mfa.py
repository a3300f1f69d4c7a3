"""Two-factor sign-in (TOTP): enrol, confirm, remove, for staff and patients alike; the
second step of a sign-in; staff reset of a patient's factor.

The same three operations exist under /staff/mfa and /portal/mfa: identity tells the caller's
kind from the principal, so one handler serves both.
"""

from __future__ import annotations

from typing import Annotated, Literal

import grpc
from pydantic import Field

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api import access
from services.gateway.api.credentials import BASE as CREDENTIALS
from services.gateway.api.fields import Text
from services.gateway.api.json_io import from_rpc
from services.gateway.api.models import Request, Response
from services.gateway.api.operation import Answer, Call, Operation, Reply
from services.gateway.context import BACKENDS
from services.gateway.security import Problem

Code = Annotated[
    str,
    Text(40, description="A six-digit code of the authenticator app (or a recovery code)."),
]


class TotpCode(Request):
    code: Code


class TotpEnrolment(Response):
    secret: str = Field(description="The manual key (base32).")
    otpauth_uri: str = Field(description="The key as an otpauth:// URI (what the QR code holds).")


class RecoveryCodes(Response):
    recovery_codes: list[str] = Field(description="Ten single-use codes, shown only this once.")


class MfaChallenge(Response):
    mfa_required: Literal[True]
    challenge: str = Field(description="Send with a code to the sign-in's `/mfa` step.")


class MfaSignIn(Request):
    challenge: Annotated[str, Text(200)]
    code: Code


def too_many() -> Problem:
    return Problem(
        429,
        "Too many wrong codes",
        "Please wait a few minutes, then try again.",
        headers={"Retry-After": "300"},
    )


def rpc_problem(exc: grpc.aio.AioRpcError) -> Problem | None:
    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return too_many()
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        # A well-formed request whose proof is wrong: refused, not malformed.
        return Problem(
            403,
            "Code refused",
            "That code is not correct, or it was used already.",
            code="INVALID_CODE",
        )
    return from_rpc(exc)


async def start(call: Call[None, None]) -> Reply:
    try:
        found = await call.request.app[BACKENDS].identity.StartTotpEnrolment(
            pb.StartTotpEnrolmentRequest(), metadata=auth.metadata(call.request, call.caller)
        )
    except grpc.aio.AioRpcError as exc:
        raise rpc_problem(exc) or exc from None
    return Reply(TotpEnrolment(secret=found.secret, otpauth_uri=found.otpauth_uri), status=201)


async def confirm(call: Call[TotpCode, None]) -> Reply:
    try:
        found = await call.request.app[BACKENDS].identity.ConfirmTotp(
            pb.ConfirmTotpRequest(code=call.body.code),
            metadata=auth.metadata(call.request, call.caller),
        )
    except grpc.aio.AioRpcError as exc:
        raise rpc_problem(exc) or exc from None
    return Reply(RecoveryCodes(recovery_codes=list(found.codes)))


async def remove(call: Call[TotpCode, None]) -> Reply:
    try:
        await call.request.app[BACKENDS].identity.RemoveTotp(
            pb.RemoveTotpRequest(code=call.body.code),
            metadata=auth.metadata(call.request, call.caller),
        )
    except grpc.aio.AioRpcError as exc:
        raise rpc_problem(exc) or exc from None
    return Reply(status=204)


async def complete(
    call: Call[MfaSignIn, None], kind: pb.SessionKind.ValueType, realm: str = ""
) -> pb.SessionGrant:
    """The second step of a sign-in: the new session's grant, or 401/429."""
    try:
        grant: pb.SessionGrant = await call.request.app[BACKENDS].identity.CompleteMfaSignIn(
            pb.CompleteMfaSignInRequest(
                challenge=call.body.challenge,
                code=call.body.code,
                kind=kind,
                realm=auth.REALM_ENUM.get(realm, pb.REALM_UNSPECIFIED),
                user_agent=auth.user_agent(call.request),
            ),
            metadata=auth.gateway_metadata(call.request),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise too_many() from None
        if exc.code() in access.REFUSED:
            raise Problem(
                401,
                "Sign-in failed",
                "That code is not correct, or it was used already. Sign in again if the "
                "challenge has expired.",
                code="INVALID_CODE",
            ) from None
        raise
    return grant


def challenge_answer(grant: pb.SessionGrant) -> Reply:
    return Reply(MfaChallenge(mfa_required=True, challenge=grant.mfa_challenge))


CHALLENGE_ANSWER = Answer(
    200,
    "The password is right and a second factor is on: send the challenge with a code to the "
    "`/mfa` step of this sign-in.",
    MfaChallenge,
)


async def reset_patient(call: Call[None, None]) -> Reply:
    try:
        await call.request.app[BACKENDS].identity.ResetPatientMfa(
            pb.ResetPatientMfaRequest(
                patient_id=call.params["patient_id"],
                realm=auth.REALM_ENUM[call.params["realm"]],
            ),
            metadata=auth.metadata(call.request, call.caller),
        )
    except grpc.aio.AioRpcError as exc:
        raise from_rpc(exc) or exc from None
    return Reply(status=204)


def _own(prefix: str, tag: str, security: Literal["staff", "patient"]) -> list[Operation]:
    who = "Staff" if tag == "staff" else "My"
    return [
        Operation(
            "POST",
            f"/api/v1/{prefix}/mfa/totp",
            start,
            operation_id=f"start{who}TotpEnrolment",
            summary="Start two-factor enrolment: a new key, confirmed by a code",
            tag=tag,
            security=security,
            mfa_enrolment=security == "staff",
            answers=(Answer(201, "The key to add to an authenticator app.", TotpEnrolment),),
            problems=(409,),
        ),
        Operation(
            "POST",
            f"/api/v1/{prefix}/mfa/totp/confirm",
            confirm,
            operation_id=f"confirm{who}Totp",
            summary="Confirm two-factor enrolment with a code; answers the recovery codes",
            tag=tag,
            security=security,
            mfa_enrolment=security == "staff",
            body=TotpCode,
            answers=(Answer(200, "Two-factor sign-in is on.", RecoveryCodes),),
            problems=(403, 409, 429),
        ),
        Operation(
            "DELETE",
            f"/api/v1/{prefix}/mfa/totp",
            remove,
            operation_id=f"remove{who}Totp",
            summary="Turn two-factor sign-in off (needs a code or a recovery code)",
            tag=tag,
            security=security,
            body=TotpCode,
            answers=(Answer(204, "Two-factor sign-in is off."),),
            problems=(403, 409, 429),
        ),
    ]


def operations() -> list[Operation]:
    return [
        *_own("staff", "staff", "staff"),
        *_own("portal", "portal", "patient"),
        Operation(
            "DELETE",
            CREDENTIALS + "/mfa",
            reset_patient,
            operation_id="resetPatientMfa",
            summary="Remove a patient's second factor of one realm (audited)",
            tag="credentials",
            security="staff",
            answers=(Answer(204, "Removed; the patient signs in with the password alone."),),
        ),
    ]
