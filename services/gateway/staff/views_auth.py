"""Staff sign-in and sign-out."""

from __future__ import annotations

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, form_text
from services.gateway.context import BACKENDS
from services.gateway.staff.common import HOME_URL, LOGIN_URL, form, redirect, render


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(HOME_URL)


async def login_form(request: web.Request) -> web.StreamResponse:
    if await auth.staff_caller(request) is not None:
        raise web.HTTPSeeOther(HOME_URL)
    return render(request, None, "staff/login.html", {"username": ""})


async def login(request: web.Request) -> web.StreamResponse:
    retry_after = await auth.sign_in_retry_after(request)
    if retry_after is not None:
        raise web.HTTPTooManyRequests(
            text="Too many sign-in attempts. Please wait a minute, then try again.",
            headers={"Retry-After": str(retry_after)},
        )
    values, bad = await form(request)
    username, password = values.get("username", ""), values.get("password", "")
    if bad:
        return _failed(request, username, form_text.CHECK_FORM, bad, status=400)
    if not username or not password:
        return _failed(request, username, "Enter your username and password.")
    try:
        grant = await request.app[BACKENDS].identity.StaffSignIn(
            pb.SignInRequest(username=username, password=password),
            metadata=auth.gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in auth.SIGN_IN_REFUSED:
            return _failed(request, username, auth.INVALID_SIGN_IN)
        raise
    response = redirect(request, HOME_URL)
    auth.set_session_cookie(request, response, auth.STAFF_COOKIE, grant.token, path="/")
    return response


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


def setup(app: web.Application) -> None:
    app.router.add_get("/staff", index)
    app.router.add_get("/staff/", index)
    app.router.add_get(LOGIN_URL, login_form)
    app.router.add_post(LOGIN_URL, login)
    app.router.add_post("/staff/logout", logout)
