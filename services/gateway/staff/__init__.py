"""Routes of the gateway's staff section: sign-in, patients, portal credentials, scheduling,
admin."""

from __future__ import annotations

from aiohttp import web

from services.gateway.staff import (
    admin,
    appointment_types,
    appointments,
    calendar,
    chart_forms,
    chart_records,
    credentials,
    demographics,
    form_builder,
    patient_mfa,
    patients,
    portal_forms,
    practice,
    profile_updates,
    providers,
    refill_requests,
    review_queue,
    two_factor,
    views_auth,
    work_queue,
)


def setup(app: web.Application) -> None:
    """Register this section's routes."""
    views_auth.setup(app)
    two_factor.setup(app)
    patients.setup(app)  # /staff/patients/new before /staff/patients/{patient_id}
    demographics.setup(app)
    credentials.setup(app)
    patient_mfa.setup(app)
    appointments.setup(app)  # /staff/practice/calendar/book before providers' and types' ids
    practice.setup(app)
    profile_updates.setup(app)
    providers.setup(app)
    appointment_types.setup(app)  # /appointment-types/new before /appointment-types/{id}
    calendar.setup(app)
    admin.setup(app)
    chart_records.setup(app)
    refill_requests.setup(app)
    portal_forms.setup(app)
    form_builder.setup(app)  # /staff/practice/forms/new before /staff/practice/forms/{form_id}
    chart_forms.setup(app)
    review_queue.setup(app)
    work_queue.setup(app)
