"""Create and reset a patient's portal credentials, and the printable credentials letter.

The plain password exists only in identity's answer and in the page (and PDF) made from it:
the gateway never stores or logs it, so a lost letter can only be replaced by a reset.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, letters
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.demographics import REALM_LABEL
from services.gateway.staff import letter_token
from services.gateway.staff.common import form, invalid, patient_id, realm, render, staff_page, when
from services.gateway.staff.patients import fetch_patient, patient_context
from services.runtime.errors import precondition_text

log = logging.getLogger(__name__)
LETTER_MINUTES = letter_token.LIFETIME.seconds // 60
LETTER_TAMPERED = (
    "This letter cannot be downloaded: its details are missing or were changed. Download it "
    "from the letter page that showed the password."
)
LETTER_EXPIRED = (
    f"A letter can be downloaded for {LETTER_MINUTES} minutes after the "
    "credentials are issued, and the password cannot be shown again. To give the patient a "
    "new letter, reset the credentials."
)


def web_address(request: web.Request, realm_name: str) -> str:
    settings = request.app[SETTINGS]
    return settings.onsite_url if realm_name == "onsite" else settings.offsite_url


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
        if errors is None:
            return _refused(request, caller, patient, realm_name, exc)
        staff_typed = posted.get("custom") == "1"
        if staff_typed and "password" in errors:
            # The typed password was refused: it goes back to its own field, with the reason,
            # and the page offers a generated one again.
            errors["custom_password"] = errors.pop("password")
            return await _suggest(
                request, caller, patient, realm_name, username, errors=errors, typed=password
            )
        return _generate_page(
            request,
            caller,
            patient,
            realm_name,
            username,
            password,
            custom=staff_typed,
            errors=errors,
            status=400,
        )
    return _letter_page(request, caller, patient, realm_name, issued, reset=False)


async def _suggest(
    request: web.Request,
    caller: Caller,
    patient: pb.Patient,
    realm_name: str,
    username: str,
    *,
    errors: dict[str, list[str]] | None = None,
    typed: str = "",
) -> web.Response:
    """The page with a generated password (and the user name kept, or generated too)."""
    try:
        suggestion = await request.app[BACKENDS].identity.SuggestCredentials(
            pb.SuggestCredentialsRequest(patient_id=patient.id, realm=auth.REALM_ENUM[realm_name]),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        return _refused(request, caller, patient, realm_name, exc)
    return _generate_page(
        request,
        caller,
        patient,
        realm_name,
        username or suggestion.username,
        suggestion.password,
        errors=errors,
        typed=typed,
        status=400 if errors else 200,
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
    typed: str = "",
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
            "typed": typed,
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
    """The page with identity's reason for refusing; other errors go on to the error pages."""
    if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
        raise exc
    reason = precondition_text(exc) or exc.details() or "This is not possible now."
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
        "realm_label": REALM_LABEL[realm_name],
        "web_address": web_address(request, realm_name),
    }


# --- Reset ------------------------------------------------------------------------------------


@staff_page
async def reset_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    realm_name = realm(request)
    patient = await fetch_patient(request, caller)
    try:
        # Identity says whether a reset can go ahead (and why not) before anyone confirms it.
        account = await request.app[BACKENDS].identity.ResetCredentials(
            pb.ResetCredentialsRequest(
                patient_id=patient.id, realm=auth.REALM_ENUM[realm_name], validate_only=True
            ),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        return _refused(request, caller, patient, realm_name, exc)
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
    expires_at = when(issued.expires_at)
    fields = letter_token.LetterFields(
        patient_id=patient.id,
        realm=realm_name,
        staff_user_id=caller.session.staff_user_id,
        patient_name=issued.patient_name or context["patient_name"],
        username=issued.username,
        password=issued.password,
        expires_at=expires_at.isoformat() if expires_at else "",
        issued_at=datetime.now(UTC).isoformat(),
        reset=reset,
    )
    key = letter_token.key_for(request.app[SETTINGS].secret)
    # A POST answer, never a redirect: the password is in this response and nowhere else.
    return render(
        request,
        caller,
        "staff/credentials_letter.html",
        {
            **context,
            "letter": _letter(request, fields),
            "sealed_letter": letter_token.seal(fields, key),
            "letter_minutes": LETTER_MINUTES,
        },
    )


def _letter(request: web.Request, fields: letter_token.LetterFields) -> letters.CredentialsLetter:
    settings = request.app[SETTINGS]
    return letters.CredentialsLetter(
        zone=settings.clinic_timezone,
        clinic_name=settings.clinic_name,
        patient_name=fields.patient_name,
        realm=fields.realm,
        web_address=web_address(request, fields.realm),
        username=fields.username,
        password=fields.password,
        expires_at=fields.expires(),
        issued_at=fields.issued(),
        reset=fields.reset,
    )


@staff_page
async def letter_pdf(request: web.Request, caller: Caller) -> web.StreamResponse:
    """The letter page's letter as a PDF: only with the fields this gateway signed for it."""
    realm_name = realm(request)
    patient = patient_id(request)  # a malformed id is a 404 here too
    key = letter_token.key_for(request.app[SETTINGS].secret)
    try:
        posted, _ = await form(request)  # a refused value cannot unseal either
        fields = letter_token.unseal(posted.get("letter", ""), key, datetime.now(UTC))
    except letter_token.Refused as refused:
        if refused.expired:
            raise web.HTTPGone(
                reason="This letter can no longer be downloaded", text=LETTER_EXPIRED
            ) from None
        raise web.HTTPBadRequest(
            reason="This letter cannot be downloaded", text=LETTER_TAMPERED
        ) from None
    made_for = (fields.patient_id, fields.realm, fields.staff_user_id)
    if made_for != (patient, realm_name, caller.session.staff_user_id):
        raise web.HTTPBadRequest(reason="This letter cannot be downloaded", text=LETTER_TAMPERED)
    await request.app[BACKENDS].identity.RecordLetterDownloaded(
        pb.RecordLetterDownloadedRequest(patient_id=patient, realm=auth.REALM_ENUM[realm_name]),
        metadata=auth.metadata(request, caller),
    )
    try:
        body = await asyncio.to_thread(letters.render_pdf, _letter(request, fields))
    except letters.FontsMissing as missing:
        log.error("credentials letter PDF not made", extra={"error": str(missing)})
        raise web.HTTPServiceUnavailable(
            reason="The PDF cannot be made on this server",
            text="Its fonts are not installed. Print the letter from the letter page instead.",
        ) from None
    return web.Response(
        body=body,
        content_type="application/pdf",
        headers={
            "Content-Disposition": 'attachment; filename="portal-credentials.pdf"',
            "Cache-Control": "no-store",
        },
    )


def setup(app: web.Application) -> None:
    base = "/staff/patients/{patient_id}/portal/{realm}"
    app.router.add_get(f"{base}/create", generate_form)
    app.router.add_post(f"{base}/create", generate)
    app.router.add_get(f"{base}/reset", reset_form)
    app.router.add_post(f"{base}/reset", reset)
    app.router.add_post(f"{base}/letter.pdf", letter_pdf)
