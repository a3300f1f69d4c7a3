"""Liveness and readiness of the gateway, and what it knows of its backends.

Readiness means "this gateway can serve": it stays 200 while one backend is down, because pages
and operations of the other backends still work and those of the one that is down answer a clean
503 naming it. Failing readiness on a backend outage would take every gateway replica out of the
Service at once, and sign-in with them. Only while the gateway shuts down is it 503.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.gateway.context import BACKENDS

# Set when shutdown begins: requests on kept-alive connections then learn to go elsewhere.
STOPPING = web.AppKey("stopping", asyncio.Event)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    """200 while the gateway runs (503 while it stops); the body reports every backend.

    "status" of a backend is its serving status (SERVING while its database answers); "events"
    shows whether its broker link is up too (a broker outage only delays events).
    """
    report = await request.app[BACKENDS].health()
    not_serving = sorted(name for name, status in report.items() if status["serving"] != "SERVING")
    stopping = request.app[STOPPING].is_set()
    body = {
        "status": "stopping" if stopping else "degraded" if not_serving else "ready",
        "not_serving": not_serving,
        "backends": {
            name: {"status": status["serving"], "events": status["overall"]}
            for name, status in report.items()
        },
    }
    return web.json_response(body, status=503 if stopping else 200)


async def _mark_stopping(app: web.Application) -> None:
    app[STOPPING].set()


def setup(app: web.Application) -> None:
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(_mark_stopping)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
