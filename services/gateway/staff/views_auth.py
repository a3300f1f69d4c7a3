"""Staff sign-in, sign-out, and the own password change (forced after a temporary one)."""

from __future__ import annotations

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, form_text
from services.gateway.context import BACKENDS
from services.gateway.staff.common import (
    HOME_URL,
    LOGIN_URL,
    PASSWORD_URL,
    TWO_FACTOR_URL,
    form,
    invalid,
    redirect,
    render,
)


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(HOME_URL)


async def login_form(request: web.Request) -> web.StreamResponse:
    if await auth.staff_caller(request) is not None:
        raise web.HTTPSeeOther(HOME_URL)
    return render(request, None, "staff/login.html", {"username": ""})


async def _refuse_if_throttled(request: web.Request) -> None:
    """Count this sign-in attempt; over the address's limit, answer 429 with Retry-After."""
    retry_after = await auth.sign_in_retry_after(request)
    if retry_after is not None:
        raise web.HTTPTooManyRequests(
            text=auth.TOO_MANY_SIGN_INS, headers={"Retry-After": str(retry_after)}
        )


async def login(request: web.Request) -> web.StreamResponse:
    await _refuse_if_throttled(request)
    values, bad = await form(request)
    username, password = values.get("username", ""), values.get("password", "")
    if bad:
        return _failed(request, username, form_text.CHECK_FORM, bad, status=400)
    if not username or not password:
        return _failed(request, username, "Enter your username and password.")
    try:
        grant = await request.app[BACKENDS].identity.StaffSignIn(
            pb.SignInRequest(
                username=username,
                password=password,
                device_token=request.cookies.get(auth.STAFF_DEVICE_COOKIE, ""),
                remember_device=True,
                user_agent=auth.user_agent(request),
            ),
            metadata=auth.gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in auth.SIGN_IN_REFUSED:
            return _failed(request, username, auth.INVALID_SIGN_IN)
        raise
    if grant.mfa_challenge:
        return _second_step(request, grant.mfa_challenge)
    return _signed_in(request, grant)


def _signed_in(request: web.Request, grant: pb.SessionGrant) -> web.Response:
    """Into the staff portal; to the password page first when the password must change."""
    if grant.session.must_change_password:
        next_page = PASSWORD_URL
    elif grant.session.must_enrol_mfa:
        next_page = TWO_FACTOR_URL  # the role requires a second factor: set it up first
    else:
        next_page = HOME_URL
    response = redirect(request, next_page)
    auth.set_session_cookie(request, response, auth.STAFF_COOKIE, grant.token, path="/")
    auth.set_device_cookie(request, response, grant.device_token)
    return response


def _second_step(
    request: web.Request, challenge: str, message: str = "", status: int = 200
) -> web.Response:
    errors = {"code": [message]} if message else {}
    return render(
        request,
        None,
        "staff/login_mfa.html",
        {"challenge": challenge, "errors": errors},
        status=status,
    )


async def login_mfa(request: web.Request) -> web.StreamResponse:
    """The sign-in's second step: the challenge of the first step and a code."""
    await _refuse_if_throttled(request)
    values, bad = await form(request)
    challenge, code = values.get("challenge", ""), values.get("code", "")
    if bad or not challenge:
        raise web.HTTPSeeOther(LOGIN_URL)
    try:
        grant = await request.app[BACKENDS].identity.CompleteMfaSignIn(
            pb.CompleteMfaSignInRequest(
                challenge=challenge,
                code=code,
                kind=pb.SESSION_KIND_STAFF,
                # The device cookie's Path (/staff/login) covers this second step too.
                device_token=request.cookies.get(auth.STAFF_DEVICE_COOKIE, ""),
                remember_device=True,
                user_agent=auth.user_agent(request),
            ),
            metadata=auth.gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return _second_step(request, challenge, auth.MFA_TOO_MANY, status=429)
        if exc.code() in auth.SIGN_IN_REFUSED:
            return _second_step(request, challenge, auth.MFA_REFUSED, status=401)
        raise
    return _signed_in(request, grant)


def _failed(
    request: web.Request,
    username: str,
    message: str,
    fields: dict[str, list[str]] | None = None,
    *,
    status: int = 401,
) -> web.Response:
    return render(
        request,
        None,
        "staff/login.html",
        {"username": username, "errors": {"_form": [message], **(fields or {})}},
        status=status,
    )


async def logout(request: web.Request) -> web.StreamResponse:
    token = auth.session_cookie(request, auth.STAFF_COOKIE)
    if token:
        await auth.end_session(request, token)
    response = redirect(request, LOGIN_URL)
    auth.clear_session_cookie(response, auth.STAFF_COOKIE, path="/")
    return response


async def password_form(request: web.Request) -> web.StreamResponse:
    caller = await auth.staff_caller(request)
    if caller is None:
        raise web.HTTPSeeOther(LOGIN_URL)
    if caller.must_enrol_mfa:  # the second factor first (its role requires one)
        raise web.HTTPSeeOther(TWO_FACTOR_URL)
    return _password_page(request, caller, {})


async def change_password(request: web.Request) -> web.StreamResponse:
    caller = await auth.staff_caller(request)
    if caller is None:
        raise web.HTTPSeeOther(LOGIN_URL)
    if caller.must_enrol_mfa:  # the second factor first (its role requires one)
        raise web.HTTPSeeOther(TWO_FACTOR_URL)
    values, bad = await form(request)
    if bad:
        return _password_page(request, caller, bad, status=400)
    if values.get("new_password", "") != values.get("confirm_password", ""):
        return _password_page(
            request, caller, {"confirm_password": ["The passwords do not match."]}, status=400
        )
    try:
        grant = await request.app[BACKENDS].identity.ChangeStaffPassword(
            pb.ChangePasswordRequest(
                current_password=values.get("current_password", ""),
                new_password=values.get("new_password", ""),
            ),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        errors = invalid(exc)
        if errors is None:
            raise
        return _password_page(request, caller, errors, status=400)
    # Every other session ended; this browser continues with the fresh one.
    response = redirect(request, HOME_URL, flash="password-changed")
    auth.set_session_cookie(request, response, auth.STAFF_COOKIE, grant.token, path="/")
    return response


def _password_page(
    request: web.Request, caller: auth.Caller, errors: dict[str, list[str]], *, status: int = 200
) -> web.Response:
    return render(
        request,
        caller,
        "staff/change_password.html",
        {"errors": errors, "forced": caller.must_change_password},
        status=status,
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/staff", index)
    app.router.add_get("/staff/", index)
    app.router.add_get(LOGIN_URL, login_form)
    app.router.add_post(LOGIN_URL, login)
    app.router.add_post(LOGIN_URL + "/mfa", login_mfa)
    app.router.add_post("/staff/logout", logout)
    app.router.add_get(PASSWORD_URL, password_form)
    app.router.add_post(PASSWORD_URL, change_password)
