"""The gateway application factory: staff portal, patient portal and JSON API over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from services.gateway import api, health, pages, patient, staff
from services.gateway.backends import Backends
from services.gateway.context import BACKENDS, LOGIN_LIMITER, SETTINGS
from services.gateway.ratelimit import RateLimiter
from services.gateway.security import (
    COOKIE_SECURE,
    CSRF_KEY,
    LazyCsrfToken,
    csrf_protect,
    error_pages,
    security_headers,
)
from services.gateway.session_cache import SessionCache
from services.gateway.session_watch import watch_sessions
from services.gateway.settings import GatewaySettings
from services.gateway.staff import chart_records
from services.gateway.staff_access import staff_guard

STATIC = Path(str(resources.files(__package__) / "static"))


def _static_url() -> Any:
    # Content hashes in URLs let browsers cache static files forever and still see changes.
    versions = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:10] for p in STATIC.iterdir()}
    return lambda name: f"/static/{name}?v={versions.get(name, '0')}"


async def _template_context(request: web.Request) -> dict[str, Any]:
    return {
        "csrf_token": LazyCsrfToken(request),
        "clinic_name": request.app[SETTINGS].clinic_name,
    }


def create_app(settings: GatewaySettings, backends: Backends | None = None) -> web.Application:
    app = web.Application(
        # The document upload route alone reads up to 10 MiB (chart_records.upload_body_limit).
        middlewares=[
            security_headers,
            error_pages,
            staff_guard,  # before anything reads a staff request's body
            chart_records.upload_body_limit,
            csrf_protect,
        ],
        client_max_size=1024**2,
    )
    app[SETTINGS] = settings
    app[CSRF_KEY] = hashlib.sha256(b"csrf:" + settings.secret.encode()).digest()
    app[COOKIE_SECURE] = settings.cookie_secure
    app[LOGIN_LIMITER] = RateLimiter(settings.login_rate_per_minute)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader(__package__, "templates"),
        autoescape=True,
        context_processors=[_template_context],
        undefined=jinja2.Undefined,
    )
    env.globals["static"] = _static_url()

    async def backends_ctx(app: web.Application) -> AsyncIterator[None]:
        app[BACKENDS] = backends or Backends(
            settings.backends,
            settings.principal_key,
            SessionCache(ttl=settings.session_cache_seconds),
        )
        yield
        await app[BACKENDS].close()

    async def session_watch_ctx(app: web.Application) -> AsyncIterator[None]:
        # The cache is used only while this keeps identity's change stream open.
        task = asyncio.create_task(watch_sessions(app[BACKENDS]), name="session-watch")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(backends_ctx)
    app.cleanup_ctx.append(session_watch_ctx)
    app.router.add_static("/static", STATIC)
    health.setup(app)
    pages.setup(app)
    staff.setup(app)
    patient.setup(app)
    api.setup(app)
    return app
