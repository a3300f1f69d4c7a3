"""Create and reset a patient's portal credentials, and the printable credentials letter.

The plain password exists only in identity's answer and in the page (and PDF) made from it:
the gateway never stores or logs it, so a lost letter can only be replaced by a reset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, letters
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.staff.common import form, invalid, patient_id, realm, render, staff_page, when
from services.gateway.staff.patients import fetch_patient, patient_context
from services.runtime.errors import precondition_kind

# Why create or reset cannot go ahead, by identity's precondition type.
REFUSALS = {
    "PORTAL_NOT_ALLOWED": (
        "Allow Patient Portal is No for this patient. Set it to Yes under Demographics → Edit "
        "→ Choices first."
    ),
    "ACCOUNT_EXISTS": (
        "This patient already has {realm} portal credentials. To give the patient a new "
        "password, reset them instead."
    ),
    "NO_ACCOUNT": "This patient has no {realm} portal credentials yet. Create them instead.",
}
MAX_FIELD = 300  # letter fields posted back for the PDF


def web_address(request: web.Request, realm_name: str) -> str:
    settings = request.app[SETTINGS]
    return settings.onsite_url if realm_name == "onsite" else settings.offsite_url


def _reason(kind: str, realm_name: str) -> str:
    return REFUSALS[kind].format(realm=letters.REALM_LABEL[realm_name].lower())


def _refusal(exc: grpc.aio.AioRpcError, realm_name: str) -> str | None:
    """Why identity refused (FAILED_PRECONDITION), as a sentence; None for other errors."""
    if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return None
    kind = precondition_kind(exc)
    if kind in REFUSALS:
        return _reason(kind, realm_name)
    return exc.details() or "This is not possible now."


# --- Create: the Generate Username and Password page ---------------------------------------


@staff_page
async def generate_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    realm_name = realm(request)
    patient = await fetch_patient(request, caller)
    return await _suggest(request, caller, patient, realm_name, username="")


@staff_page
async def generate(request: web.Request, caller: Caller) -> web.StreamResponse:
    realm_name = realm(request)
    posted, bad = await form(request)
    action = posted.get("action", "save")
    if action not in ("save", "regenerate", "custom"):
        raise web.HTTPBadRequest()
    patient = await fetch_patient(request, caller)
    username = posted.get("username", "")
    if bad:
        password = posted.get("password", "")
        return _generate_page(
            request, caller, patient, realm_name, username, password, errors=bad, status=400
        )
    if action == "regenerate":
        return await _suggest(request, caller, patient, realm_name, username=username)
    password = posted.get("password", "")
    if action == "custom":
        # The typed password becomes the one to save; identity checks it against the policy
        # on Save, so it is checked in one place only.
        custom = posted.get("custom_password", "")
        if not custom:
            missing = {"custom_password": ["Type a password, or keep the generated one."]}
            return _generate_page(
                request, caller, patient, realm_name, username, password, errors=missing, status=400
            )
        return _generate_page(request, caller, patient, realm_name, username, custom, custom=True)
    try:
        issued = await request.app[BACKENDS].identity.IssueCredentials(
            pb.IssueCredentialsRequest(
                patient_id=patient.id,
                realm=auth.REALM_ENUM[realm_name],
                username=username,
                password=password,
            ),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        errors = invalid(exc)
        if errors is not None:
            return _generate_page(
                request, caller, patient, realm_name, username, password, errors=errors, status=400
            )
        return _refused(request, caller, patient, realm_name, exc)
    return _letter_page(request, caller, patient, realm_name, issued, reset=False)


async def _suggest(
    request: web.Request, caller: Caller, patient: pb.Patient, realm_name: str, username: str
) -> web.Response:
    try:
        suggestion = await request.app[BACKENDS].identity.SuggestCredentials(
            pb.SuggestCredentialsRequest(patient_id=patient.id, realm=auth.REALM_ENUM[realm_name]),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        return _refused(request, caller, patient, realm_name, exc)
    return _generate_page(
        request, caller, patient, realm_name, username or suggestion.username, suggestion.password
    )


def _generate_page(
    request: web.Request,
    caller: Caller,
    patient: pb.Patient,
    realm_name: str,
    username: str,
    password: str,
    *,
    custom: bool = False,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        caller,
        "staff/credentials_generate.html",
        {
            **_context(request, patient, realm_name),
            "username": username,
            "password": password,
            "custom": custom,
            "errors": errors or {},
        },
        status=status,
    )


def _refused(
    request: web.Request,
    caller: Caller,
    patient: pb.Patient,
    realm_name: str,
    exc: grpc.aio.AioRpcError,
) -> web.Response:
    """The page saying why identity refused; any other error goes on to the error pages."""
    reason = _refusal(exc, realm_name)
    if reason is None:
        raise exc
    return _refused_page(request, caller, patient, realm_name, reason)


def _refused_page(
    request: web.Request, caller: Caller, patient: pb.Patient, realm_name: str, reason: str
) -> web.Response:
    return render(
        request,
        caller,
        "staff/credentials_refused.html",
        {
            **_context(request, patient, realm_name),
            "reason": reason,
        },
        status=409,
    )


def _context(request: web.Request, patient: pb.Patient, realm_name: str) -> dict[str, Any]:
    return {
        **patient_context(patient),
        "realm": realm_name,
        "realm_label": letters.REALM_LABEL[realm_name],
        "web_address": web_address(request, realm_name),
    }


# --- Reset ------------------------------------------------------------------------------------


@staff_page
async def reset_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    realm_name = realm(request)
    patient = await fetch_patient(request, caller)
    account = next((a for a in patient.accounts if a.realm == auth.REALM_ENUM[realm_name]), None)
    # Identity refuses a reset in both cases; say so before asking to confirm.
    kind = "PORTAL_NOT_ALLOWED" if not patient.allow_patient_portal else ""
    kind = kind or ("NO_ACCOUNT" if account is None else "")
    if kind:
        return _refused_page(request, caller, patient, realm_name, _reason(kind, realm_name))
    return render(
        request,
        caller,
        "staff/credentials_reset.html",
        {**_context(request, patient, realm_name), "account": account},
    )


@staff_page
async def reset(request: web.Request, caller: Caller) -> web.StreamResponse:
    realm_name = realm(request)
    patient = await fetch_patient(request, caller)
    try:
        issued = await request.app[BACKENDS].identity.ResetCredentials(
            pb.ResetCredentialsRequest(patient_id=patient.id, realm=auth.REALM_ENUM[realm_name]),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        return _refused(request, caller, patient, realm_name, exc)
    return _letter_page(request, caller, patient, realm_name, issued, reset=True)


# --- The letter ---------------------------------------------------------------------------------


def _letter_page(
    request: web.Request,
    caller: Caller,
    patient: pb.Patient,
    realm_name: str,
    issued: pb.IssuedCredentials,
    *,
    reset: bool,
) -> web.Response:
    context = _context(request, patient, realm_name)
    letter = letters.CredentialsLetter(
        zone=request.app[SETTINGS].clinic_timezone,
        clinic_name=request.app[SETTINGS].clinic_name,
        patient_name=issued.patient_name or context["patient_name"],
        realm=realm_name,
        web_address=context["web_address"],
        username=issued.username,
        password=issued.password,
        expires_at=when(issued.expires_at),
        issued_at=datetime.now(UTC),
        reset=reset,
    )
    # A POST answer, never a redirect: the password is in this response and nowhere else.
    return render(request, caller, "staff/credentials_letter.html", {**context, "letter": letter})


@staff_page
async def letter_pdf(request: web.Request, caller: Caller) -> web.StreamResponse:
    realm_name = realm(request)
    patient_id(request)  # a malformed id is a 404 here too
    posted, bad = await form(request)
    if bad or any(len(posted.get(k, "")) > MAX_FIELD for k in posted):
        raise web.HTTPBadRequest()
    username, password = posted.get("username", ""), posted.get("password", "")
    if not username or not password:
        raise web.HTTPBadRequest(text="The letter is missing its user name or password.")
    letter = letters.CredentialsLetter(
        zone=request.app[SETTINGS].clinic_timezone,
        clinic_name=request.app[SETTINGS].clinic_name,
        patient_name=posted.get("patient_name", ""),
        realm=realm_name,
        web_address=web_address(request, realm_name),
        username=username,
        password=password,
        expires_at=_parse_time(posted.get("expires_at", "")),
        issued_at=_parse_time(posted.get("issued_at", "")) or datetime.now(UTC),
        reset=posted.get("reset") == "1",
    )
    return web.Response(
        body=letters.render_pdf(letter),
        content_type="application/pdf",
        headers={
            "Content-Disposition": 'attachment; filename="portal-credentials.pdf"',
            "Cache-Control": "no-store",
        },
    )


def _parse_time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def setup(app: web.Application) -> None:
    base = "/staff/patients/{patient_id}/portal/{realm}"
    app.router.add_get(f"{base}/create", generate_form)
    app.router.add_post(f"{base}/create", generate)
    app.router.add_get(f"{base}/reset", reset_form)
    app.router.add_post(f"{base}/reset", reset)
    app.router.add_post(f"{base}/letter.pdf", letter_pdf)
