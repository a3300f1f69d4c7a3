"""Liveness and readiness of the gateway and what it depends on."""

from __future__ import annotations

from aiohttp import web

from services.gateway.context import BACKENDS


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """200 when every backend reports SERVING; else 503 naming the ones that do not.

    A backend serves while its database answers; "events" shows whether its broker link is up
    too (a broker outage delays events but fails no request, so it does not fail readiness).
    """
    report = await request.app[BACKENDS].health()
    not_ready = sorted(name for name, status in report.items() if status["serving"] != "SERVING")
    body = {
        "status": "ready" if not not_ready else "not ready",
        "not_ready": not_ready,
        "backends": {
            name: {"status": status["serving"], "events": status["overall"]}
            for name, status in report.items()
        },
    }
    return web.json_response(body, status=503 if not_ready else 200)


def setup(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
