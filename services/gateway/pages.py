"""Pages outside the two portals: the landing page."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from services.gateway.context import SETTINGS


@aiohttp_jinja2.template("landing.html")
async def landing(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return {"onsite_url": settings.onsite_url, "offsite_url": settings.offsite_url}


def setup(app: web.Application) -> None:
    app.router.add_get("/", landing, name="landing")
