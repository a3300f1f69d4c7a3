"""The patient portal's pages: sign-in, password change, home, sign-out (profile.py: Profile)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, form_text
from services.gateway.context import BACKENDS
from services.gateway.patient import present
from services.gateway.patient.session import (
    clear_cookie,
    my_profile,
    notices,
    page_url,
    portal_base,
    portal_label,
    realm_of,
    return_to,
    session_ended,
    set_cookie,
    signed_in,
)
from services.runtime.errors import FieldErrors, field_errors, precondition_kind, precondition_text

PASSWORDS_DIFFER = "The new passwords do not match."

# The portal's sections as the home page lists them: (path, title, what the patient does there).
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("forms", "Forms", "Complete and sign consent forms, and fill in visit forms before a visit."),
    ("appointments", "Appointments", "Find an available time, book, reschedule or cancel."),
    ("refills", "Refills", "Ask the clinic to refill a prescription and see its answer."),
    ("records", "Records", "Letters, reports and records the clinic shares, and your forms."),
)


def page_context(
    request: web.Request,
    who: auth.Caller | None,
    patient: object = None,
    active_nav: str = "",
    **extra: Any,
) -> dict[str, Any]:
    realm = realm_of(request)
    context: dict[str, Any] = {
        "realm": realm,
        "realm_label": portal_label(realm),
        "portal_base": portal_base(realm),
        "active_nav": active_nav,
        "password_change_required": bool(who and who.must_change_password),
        "messages": notices(request),
    }
    if who is not None:
        # While the password must change, the profile is out of reach: name the account instead.
        context["patient"] = patient or {"first_name": who.session.username or "your account"}
    context.update(extra)
    return context


# --- Entry and sign-in --------------------------------------------------------------------------


async def realm_root(request: web.Request) -> web.StreamResponse:
    realm = realm_of(request)
    who = await auth.patient_caller(request, realm)
    raise web.HTTPFound(page_url(realm, "home" if who else "login"))


async def login_form(request: web.Request) -> web.StreamResponse:
    realm = realm_of(request)
    if await auth.patient_caller(request, realm) is not None:
        raise web.HTTPFound(page_url(realm, "home"))  # home sends a pending change on
    return _login_page(request)


def _then(request: web.Request, sent: Mapping[str, str] | None = None) -> str:
    """Where signing in leads: the page the patient was on when the session ended (checked)."""
    address = (sent if sent is not None else request.query).get("next", "")
    return return_to(realm_of(request), address)


def _login_page(
    request: web.Request,
    username: str = "",
    error: str = "",
    status: int = 200,
    errors: FieldErrors | None = None,
    then: str | None = None,
) -> web.Response:
    context = page_context(request, None, username=username, error=error, errors=errors or {})
    context["then"] = _then(request) if then is None else then
    return aiohttp_jinja2.render_template("patient/login.html", request, context, status=status)


async def login(request: web.Request) -> web.StreamResponse:
    realm = realm_of(request)
    form, bad = await form_text.read(request, strip=False)
    username = form.get("username", "").strip()
    password = form.get("password", "")
    then = _then(request, form)
    retry_after = await auth.sign_in_retry_after(request)
    if retry_after is not None:
        page = _login_page(request, username, auth.TOO_MANY_SIGN_INS, status=429, then=then)
        page.headers["Retry-After"] = str(retry_after)
        return page
    if bad:
        return _login_page(
            request, username, form_text.CHECK_FORM, status=400, errors=bad, then=then
        )
    if not username or not password:
        return _login_page(request, username, auth.INVALID_SIGN_IN, status=401, then=then)
    try:
        grant = await request.app[BACKENDS].identity.PatientSignIn(
            pb.PatientSignInRequest(
                realm=auth.REALM_ENUM[realm],
                username=username,
                password=password,
                device_token=request.cookies.get(auth.patient_device_cookie(realm), ""),
                remember_device=True,
                user_agent=auth.user_agent(request),
            ),
            metadata=auth.gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        if precondition_kind(exc) == "TEMPORARY_PASSWORD_EXPIRED":
            return _login_page(request, username, precondition_text(exc), status=403, then=then)
        if exc.code() in auth.SIGN_IN_REFUSED:
            return _login_page(request, username, auth.INVALID_SIGN_IN, status=401, then=then)
        raise
    if grant.mfa_challenge:
        return _second_step(request, grant.mfa_challenge, then)
    return await _signed_in(request, grant, then)


def _second_step(
    request: web.Request, challenge: str, then: str, message: str = "", status: int = 200
) -> web.Response:
    errors = {"code": [message]} if message else {}
    return aiohttp_jinja2.render_template(
        "patient/login_mfa.html",
        request,
        page_context(request, None, challenge=challenge, errors=errors, then=then),
        status=status,
    )


async def login_mfa(request: web.Request) -> web.StreamResponse:
    """The sign-in's second step: the challenge of the first step and a code."""
    realm = realm_of(request)
    form, bad = await form_text.read(request, strip=False)
    challenge, code = form.get("challenge", ""), form.get("code", "")
    then = _then(request, form)
    retry_after = await auth.sign_in_retry_after(request)
    if retry_after is not None:
        page = _login_page(request, "", auth.TOO_MANY_SIGN_INS, status=429)
        page.headers["Retry-After"] = str(retry_after)
        return page
    if bad or not challenge:
        raise web.HTTPSeeOther(page_url(realm, "login"))
    try:
        grant = await request.app[BACKENDS].identity.CompleteMfaSignIn(
            pb.CompleteMfaSignInRequest(
                challenge=challenge,
                code=code,
                kind=pb.SESSION_KIND_PATIENT,
                realm=auth.REALM_ENUM[realm],
                # The device cookie's Path (the realm's sign-in page) covers this step too.
                device_token=request.cookies.get(auth.patient_device_cookie(realm), ""),
                remember_device=True,
                user_agent=auth.user_agent(request),
            ),
            metadata=auth.gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return _second_step(request, challenge, then, auth.MFA_TOO_MANY, status=429)
        if exc.code() in auth.SIGN_IN_REFUSED:
            return _second_step(request, challenge, then, auth.MFA_REFUSED, status=401)
        raise
    return await _signed_in(request, grant, then)


async def _signed_in(
    request: web.Request, grant: pb.SessionGrant, then: str = ""
) -> web.StreamResponse:
    """Signed in: to the password page when it must change, else back where the patient was
    (`then`, checked by return_to) or home."""
    realm = realm_of(request)
    previous = auth.session_cookie(request, auth.patient_cookie(realm))
    if previous:
        await auth.end_session(request, previous)  # a new sign-in replaces the old session
    if grant.session.must_change_password:
        location = page_url(realm, "password")
    else:
        location = then or page_url(realm, "home")
    response = web.Response(status=303, headers={"Location": location})
    set_cookie(request, response, realm, grant.token)
    auth.set_device_cookie(
        request,
        response,
        grant.device_token,
        name=auth.patient_device_cookie(realm),
        path=auth.patient_login_path(realm),
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    realm = realm_of(request)
    token = auth.session_cookie(request, auth.patient_cookie(realm))
    if token:
        await auth.end_session(request, token)
    response = web.Response(
        status=303, headers={"Location": page_url(realm, "login", "signed-out")}
    )
    clear_cookie(response, realm)
    return response


# --- Password change ----------------------------------------------------------------------------


async def password_form(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request, allow_pending=True)
    return await _password_page(request, who, {})


async def _password_page(
    request: web.Request, who: auth.Caller, errors: FieldErrors, status: int = 200
) -> web.Response:
    patient = None if who.must_change_password else present.profile(await my_profile(request, who))
    return aiohttp_jinja2.render_template(
        "patient/password.html",
        request,
        page_context(request, who, patient, errors=errors),
        status=status,
    )


async def change_password(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request, allow_pending=True)
    realm = realm_of(request)
    form, bad = await form_text.read(request, strip=False)
    current = form.get("current_password", "")
    new = form.get("new_password", "")
    confirm = form.get("confirm_password", "")
    if bad:
        return await _password_page(request, who, bad, status=400)
    if new != confirm:
        return await _password_page(
            request, who, {"confirm_password": [PASSWORDS_DIFFER]}, status=400
        )
    try:
        grant = await request.app[BACKENDS].identity.ChangePassword(
            pb.ChangePasswordRequest(current_password=current, new_password=new),
            metadata=auth.metadata(request, who),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            errors = field_errors(exc) or {"_form": [exc.details() or "Please check the form."]}
            return await _password_page(request, who, errors, status=400)
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise session_ended(realm) from None
        raise
    response = web.Response(
        status=303, headers={"Location": page_url(realm, "home", "password-changed")}
    )
    set_cookie(request, response, realm, grant.token)  # the old session ended with the change
    return response


# --- Signed-in pages ----------------------------------------------------------------------------


async def home(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    patient = present.profile(await my_profile(request, who))
    sections = [{"key": key, "title": title, "text": text} for key, title, text in SECTIONS]
    return aiohttp_jinja2.render_template(
        "patient/home.html",
        request,
        page_context(request, who, patient, "home", sections=sections),
    )
