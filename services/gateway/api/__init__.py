"""The JSON API under /api/v1: Bearer tokens in, JSON or problem+json out.

Modules: staff (staff sessions), patients (the registry), credentials (portal credentials),
portal (the patient's own routes), openapi (the description of all of them), access (who
calls), json_io (bodies, problems), serialize (messages as JSON).
"""

from __future__ import annotations

from aiohttp import web

from services.gateway.api import credentials, openapi, patients, portal, staff


def setup(app: web.Application) -> None:
    """Register the API's routes."""
    for module in (staff, patients, credentials, portal, openapi):
        app.router.add_routes(module.routes())
