"""The staff "Two-factor sign-in" settings page (services/gateway/two_factor.py does the work)."""

from __future__ import annotations

from aiohttp import web

from services.gateway import two_factor
from services.gateway.auth import Caller
from services.gateway.staff.common import TWO_FACTOR_URL, enrolment_page, render

URL = TWO_FACTOR_URL


def _page(request: web.Request, caller: Caller, state: two_factor.PageState) -> web.Response:
    status = 400 if state.errors else 200
    return render(
        request,
        caller,
        "staff/two_factor.html",
        {"mfa": state, "mfa_base": URL, "required": caller.must_enrol_mfa},
        active_tab="",
        status=status,
    )


@enrolment_page
async def page(request: web.Request, caller: Caller) -> web.StreamResponse:
    return _page(request, caller, await two_factor.status(request, caller))


@enrolment_page
async def act(request: web.Request, caller: Caller) -> web.StreamResponse:
    state = await two_factor.act(request, caller, request.match_info["action"])
    return _page(request, caller, state)


def setup(app: web.Application) -> None:
    app.router.add_get(URL, page)
    app.router.add_post(URL + "/{action:" + two_factor.ACTIONS + "}", act)
