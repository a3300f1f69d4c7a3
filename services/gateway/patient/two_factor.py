"""The patient's "Two-factor sign-in" settings page (services/gateway/two_factor.py does the
work)."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from services.gateway import auth, two_factor
from services.gateway.patient.session import page_url, realm_of, signed_in
from services.gateway.patient.views import page_context


def _page(request: web.Request, who: auth.Caller, state: two_factor.PageState) -> web.Response:
    base = page_url(realm_of(request), "two-factor")
    return aiohttp_jinja2.render_template(
        "patient/two_factor.html",
        request,
        page_context(request, who, mfa=state, mfa_base=base),
        status=400 if state.errors else 200,
    )


async def page(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return _page(request, who, await two_factor.status(request, who))


async def act(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return _page(request, who, await two_factor.act(request, who, request.match_info["action"]))


def routes(base: str) -> list[web.RouteDef]:
    return [
        web.get(base + "/two-factor", page, name="portal-two-factor"),
        web.post(base + "/two-factor/{action:" + two_factor.ACTIONS + "}", act),
    ]
