"""Routes of the gateway's staff section: sign-in, patients, portal credentials, admin."""

from __future__ import annotations

from aiohttp import web

from services.gateway.staff import (
    admin,
    chart_records,
    credentials,
    demographics,
    patients,
    practice,
    refill_requests,
    views_auth,
)


def setup(app: web.Application) -> None:
    """Register this section's routes."""
    views_auth.setup(app)
    patients.setup(app)  # /staff/patients/new before /staff/patients/{patient_id}
    demographics.setup(app)
    credentials.setup(app)
    practice.setup(app)
    admin.setup(app)
    chart_records.setup(app)
    refill_requests.setup(app)
