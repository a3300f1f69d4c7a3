"""Where the staff portal answers: optionally only on its own host and from allowed networks.

Anywhere else /staff/ and the staff API are 404, as if they did not exist, so the public patient
host does not even reveal a staff sign-in page. Patient pages, the patient API (/api/v1/portal/)
and the API document answer everywhere.
"""

from __future__ import annotations

from ipaddress import ip_address

from aiohttp import web

from services.gateway import auth
from services.gateway.context import SETTINGS
from services.gateway.security import Handler

PUBLIC_API = ("/api/v1/portal/", "/api/v1/openapi.json")


def is_staff_path(path: str) -> bool:
    if path == "/staff" or path.startswith("/staff/"):
        return True
    return path.startswith("/api/v1/") and not path.startswith(PUBLIC_API)


def staff_allowed(request: web.Request) -> bool:
    settings = request.app[SETTINGS]
    if settings.staff_host is not None:
        host = (request.url.host or "").lower().rstrip(".")
        if host != settings.staff_host:
            return False
    if settings.staff_allowed_networks:
        try:
            client = ip_address(auth.client_address(request))
        except ValueError:
            return False
        return any(client in network for network in settings.staff_allowed_networks)
    return True


@web.middleware
async def staff_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if is_staff_path(request.path) and not staff_allowed(request):
        raise web.HTTPNotFound()
    return await handler(request)
