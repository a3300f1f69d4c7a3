"""What the staff and patient "Two-factor sign-in" pages share: the calls to identity and the
QR code (drawn here as an SVG data URI, so no third party sees the secret)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
import segno
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, form_text
from services.gateway.context import BACKENDS
from services.runtime.errors import field_errors, precondition_text

TOO_MANY = "Too many wrong codes. Please wait a few minutes, then try again."
ACTIONS = "start|confirm|remove"


def qr_data_uri(otpauth_uri: str) -> str:
    return str(segno.make(otpauth_uri, error="m").svg_data_uri(scale=4, border=2))


@dataclass
class PageState:
    """The template's context: the status, or an enrolment in progress, or fresh codes."""

    enrolled: bool = False
    recovery_codes_left: int = 0
    removal_refused: str = ""  # identity's reason the owner may not turn it off, if any
    secret: str = ""
    otpauth_uri: str = ""
    qr: str = ""
    recovery_codes: list[str] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    message: str = ""


def _refusal(exc: grpc.aio.AioRpcError) -> dict[str, list[str]]:
    if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return {"code": [TOO_MANY]}
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return {"code": field_errors(exc).get("code") or [exc.details() or ""]}
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        return {"_form": [precondition_text(exc) or exc.details() or ""]}
    raise exc


async def status(request: web.Request, caller: auth.Caller) -> PageState:
    found = await request.app[BACKENDS].identity.GetMfaStatus(
        pb.GetMfaStatusRequest(), metadata=auth.metadata(request, caller)
    )
    return PageState(
        enrolled=found.enrolled,
        recovery_codes_left=found.recovery_codes_left,
        removal_refused=found.removal_refused,
    )


async def act(request: web.Request, caller: auth.Caller, action: str) -> PageState:
    """Run one form's action (start, confirm or remove) and say what the page shows next."""
    values, bad = await form_text.read(request)
    code = values.get("code", "")
    if bad:
        state = await status(request, caller)
        state.errors = bad
        return state
    identity, md = request.app[BACKENDS].identity, auth.metadata(request, caller)
    try:
        if action == "start":
            started = await identity.StartTotpEnrolment(pb.StartTotpEnrolmentRequest(), metadata=md)
            return enrolling(started.secret, started.otpauth_uri)
        if action == "confirm":
            confirmed = await identity.ConfirmTotp(pb.ConfirmTotpRequest(code=code), metadata=md)
            return PageState(enrolled=True, recovery_codes=list(confirmed.codes))
        await identity.RemoveTotp(pb.RemoveTotpRequest(code=code), metadata=md)
        return PageState(message="Two-factor sign-in is off.")
    except grpc.aio.AioRpcError as exc:
        errors = _refusal(exc)
    if action == "confirm":
        state = enrolling(values.get("secret", ""), values.get("otpauth_uri", ""))
    else:
        state = await status(request, caller)
    state.errors = errors
    return state


def enrolling(secret: str, otpauth_uri: str) -> PageState:
    qr = qr_data_uri(otpauth_uri) if otpauth_uri.startswith("otpauth://totp/") else ""
    return PageState(secret=secret, otpauth_uri=otpauth_uri, qr=qr)
