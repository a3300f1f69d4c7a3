"""The patient portal: two realms (onsite, offsite) under /portal/<realm>/, each on its own.

Pages: sign-in, the forced or voluntary password change, home, profile (with requests to
change contact details), appointments; sign-out. The realm's session cookie (`portal_<realm>`,
path `/portal/<realm>/`) never opens the other realm.
"""

from __future__ import annotations

from aiohttp import web

from services.gateway.patient import (
    appointments,
    forms,
    profile,
    records,
    refills,
    two_factor,
    views,
)

# Only the two realms match; any other /portal/<name>/ is a plain 404.
BASE = "/portal/{realm:onsite|offsite}"


def setup(app: web.Application) -> None:
    """Register the patient portal's routes."""
    app.router.add_routes(
        [
            web.get(BASE, views.realm_root, allow_head=False),
            web.get(BASE + "/", views.realm_root, name="portal-root", allow_head=False),
            web.get(BASE + "/login", views.login_form, name="portal-login"),
            web.post(BASE + "/login", views.login),
            web.post(BASE + "/login/mfa", views.login_mfa),
            web.get(BASE + "/password", views.password_form, name="portal-password"),
            web.post(BASE + "/password", views.change_password),
            web.get(BASE + "/home", views.home, name="portal-home"),
            web.get(BASE + "/profile", profile.page, name="portal-profile"),
            web.post(BASE + "/profile", profile.propose),
            web.post(BASE + "/logout", views.logout, name="portal-logout"),
            *appointments.routes(BASE),
            *two_factor.routes(BASE),
            web.get(BASE + "/refills", refills.page, name="portal-refills"),
            web.post(BASE + "/refills", refills.request_refill),
            web.get(BASE + "/refills/{refill_id}", refills.detail),
            web.post(BASE + "/refills/{refill_id}/withdraw", refills.withdraw),
            web.get(BASE + "/records", records.page, name="portal-records"),
            web.get(BASE + "/records/documents/{item_id}", records.document),
            web.get(BASE + "/records/forms/{item_id}", records.form_pdf),
            web.get(BASE + "/records/certificates/{item_id}", records.certificate),
        ]
    )
    forms.setup(app, BASE)  # the Forms pages (patient/forms.py)
