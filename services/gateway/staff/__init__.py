"""Routes of the gateway's staff section: sign-in, patients, portal credentials, admin."""

from __future__ import annotations

from aiohttp import web

from services.gateway.staff import (
    admin,
    credentials,
    demographics,
    patients,
    practice,
    profile_updates,
    views_auth,
)


def setup(app: web.Application) -> None:
    """Register this section's routes."""
    views_auth.setup(app)
    patients.setup(app)  # /staff/patients/new before /staff/patients/{patient_id}
    demographics.setup(app)
    credentials.setup(app)
    practice.setup(app)
    profile_updates.setup(app)
    admin.setup(app)
