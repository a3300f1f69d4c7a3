"""The patient portal: two realms (onsite, offsite) under /portal/<realm>/, each on its own.

Pages: sign-in, the forced or voluntary password change, home and profile; sign-out. The realm's
session cookie (`portal_<realm>`, path `/portal/<realm>/`) never opens the other realm.
"""

from __future__ import annotations

from aiohttp import web

from services.gateway.patient import forms, views

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
            web.get(BASE + "/password", views.password_form, name="portal-password"),
            web.post(BASE + "/password", views.change_password),
            web.get(BASE + "/home", views.home, name="portal-home"),
            web.get(BASE + "/profile", views.profile, name="portal-profile"),
            web.post(BASE + "/logout", views.logout, name="portal-logout"),
            *(
                web.get(f"{BASE}/{section}", views.coming_soon, name=f"portal-{section}")
                for section in views.COMING_SOON
            ),
        ]
    )
    forms.setup(app, BASE)  # the Forms pages (patient/forms.py)
