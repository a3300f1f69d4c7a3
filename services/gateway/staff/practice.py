"""Practice tab: the overview of practice set-up (scheduling: calendar, providers, types)."""

from __future__ import annotations

from aiohttp import web

from services.gateway.auth import Caller
from services.gateway.staff.common import render, staff_page


@staff_page
async def practice(request: web.Request, caller: Caller) -> web.StreamResponse:
    return render(
        request, caller, "staff/practice.html", {"active_nav": "practice"}, active_tab="practice"
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/staff/practice", practice)
