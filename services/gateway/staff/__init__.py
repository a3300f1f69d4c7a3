"""Routes of the gateway's staff section: sign-in, patients, portal credentials, admin."""

from __future__ import annotations

from aiohttp import web

from services.gateway.staff import (
    admin,
    chart_forms,
    credentials,
    demographics,
    form_builder,
    patients,
    portal_forms,
    practice,
    review_queue,
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
    portal_forms.setup(app)
    form_builder.setup(app)  # /staff/practice/forms/new before /staff/practice/forms/{form_id}
    chart_forms.setup(app)
    review_queue.setup(app)
