"""Staff sign-in and sign-out."""

from __future__ import annotations

import aiohttp_jinja2
import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.context import BACKENDS, LOGIN_LIMITER
from services.gateway.staff.common import HOME_URL, LOGIN_URL, form, redirect, render

# The same words for an unknown user, a wrong password and a locked account.
INVALID = "Invalid username or password."


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(HOME_URL)


async def login_form(request: web.Request) -> web.StreamResponse:
    if await auth.staff_caller(request) is not None:
        raise web.HTTPSeeOther(HOME_URL)
    return render(request, None, "staff/login.html", {"username": ""})


async def login(request: web.Request) -> web.StreamResponse:
    limiter, address = request.app[LOGIN_LIMITER], auth.client_address(request)
    if not limiter.allow(address):
        return _too_many(request, limiter.retry_after(address))
    values = await form(request)
    username, password = values.get("username", ""), values.get("password", "")
    if not username or not password:
        return _failed(request, username, "Enter your username and password.")
    try:
        grant = await request.app[BACKENDS].identity.StaffSignIn(
            pb.SignInRequest(username=username, password=password),
            metadata=auth.gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
            return _failed(request, username, INVALID)
        raise
    response = redirect(request, HOME_URL)
    auth.set_session_cookie(request, response, auth.STAFF_COOKIE, grant.token, path="/")
    return response


def _too_many(request: web.Request, retry_after: int) -> web.Response:
    # Rendered here rather than raised: the error middleware would drop Retry-After.
    response = aiohttp_jinja2.render_template(
        "error.html",
        request,
        {
            "status": 429,
            "title": "Too many sign-in attempts",
            "detail": "Please wait a minute, then try again.",
            "home_url": LOGIN_URL,
        },
        status=429,
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


def _failed(request: web.Request, username: str, message: str) -> web.Response:
    return render(
        request,
        None,
        "staff/login.html",
        {"username": username, "errors": {"_form": [message]}},
        status=401,
    )


async def logout(request: web.Request) -> web.StreamResponse:
    token = request.cookies.get(auth.STAFF_COOKIE)
    if token:
        try:
            await request.app[BACKENDS].identity.EndSession(
                pb.EndSessionRequest(token=token), metadata=auth.gateway_metadata(request)
            )
        except grpc.aio.AioRpcError as exc:
            # A session that already ended is what signing out wants anyway.
            if exc.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND):
                raise
    response = redirect(request, LOGIN_URL)
    auth.clear_session_cookie(response, auth.STAFF_COOKIE, path="/")
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/staff", index)
    app.router.add_get("/staff/", index)
    app.router.add_get(LOGIN_URL, login_form)
    app.router.add_post(LOGIN_URL, login)
    app.router.add_post("/staff/logout", logout)
