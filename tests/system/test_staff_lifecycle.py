"""Staff lifecycle through the real gateway and identity: the JSON API's staff-user routes."""

from __future__ import annotations

import html
import re
import uuid

import aiohttp

from tests.system.conftest import RunningStack
from tests.system.test_api import Api
from tests.system.test_api import api as api
from tests.system.test_api import http as http
from tests.system.test_staff_pages import Browser
from tests.system.test_staff_pages import admin as admin
from tests.system.test_staff_pages import browser as browser

CHOSEN = "Quartz-Lantern-Evening-77"


async def test_admin_creates_resets_disables_and_unlocks_staff(api: Api) -> None:
    admin = await api.staff_token()
    username = "nurse" + uuid.uuid4().hex[:8]
    status, created, _ = await api.call(
        "POST",
        "/api/v1/staff-users",
        admin,
        json={"username": username, "display_name": "Nurse Ratched", "role": "clinician"},
    )
    assert status == 201, created
    assert created["must_change_password"] and created["temporary_password"]
    user = created["id"]

    # First sign-in: must change the password; nothing else is allowed until then.
    status, session, _ = await api.call(
        "POST",
        "/api/v1/staff/sessions",
        json={"username": username, "password": created["temporary_password"]},
    )
    assert status == 201 and session["must_change_password"] is True, session
    pending = session["token"]
    status, _, _ = await api.call("GET", "/api/v1/patients?q=x", pending)
    assert status == 403
    status, _, _ = await api.call(
        "POST",
        "/api/v1/staff/password",
        pending,
        json={"current_password": created["temporary_password"], "new_password": CHOSEN},
    )
    assert status == 204
    status, session, _ = await api.call(
        "POST", "/api/v1/staff/sessions", json={"username": username, "password": CHOSEN}
    )
    assert status == 201 and session["must_change_password"] is False
    token = session["token"]
    status, _, _ = await api.call("GET", "/api/v1/patients?q=x", token)
    assert status == 200

    # Only admins manage staff users.
    status, _, _ = await api.call("GET", "/api/v1/staff-users", token)
    assert status == 403

    # Disabling ends the session at once; enabling lets the user sign in again.
    status, body, _ = await api.call(
        "PATCH", f"/api/v1/staff-users/{user}", admin, json={"disabled": True}
    )
    assert status == 200 and body["disabled"] is True
    status, _, _ = await api.call("GET", "/api/v1/patients?q=x", token)
    assert status == 401
    status, body, _ = await api.call(
        "PATCH",
        f"/api/v1/staff-users/{user}",
        admin,
        json={"disabled": False, "role": "front_desk"},
    )
    assert status == 200 and body["role"] == "front_desk" and not body["disabled"]

    # Reset: a temporary password, shown once; then unlock after the user is locked out.
    status, reset, _ = await api.call("POST", f"/api/v1/staff-users/{user}/password-reset", admin)
    assert status == 200 and reset["temporary_password"] and reset["expires_at"]
    for _ in range(5):
        status, _, _ = await api.call(
            "POST", "/api/v1/staff/sessions", json={"username": username, "password": "wrong-one-x"}
        )
        assert status == 401
    status, listed, _ = await api.call("GET", "/api/v1/staff-users", admin)
    assert status == 200
    mine = next(u for u in listed["items"] if u["id"] == user)
    assert mine["locked_until"] is not None and mine["must_change_password"]
    status, _, _ = await api.call("POST", f"/api/v1/staff-users/{user}/unlock", admin)
    assert status == 204
    status, session, _ = await api.call(
        "POST",
        "/api/v1/staff/sessions",
        json={"username": username, "password": reset["temporary_password"]},
    )
    assert status == 201 and session["must_change_password"] is True


async def test_unknown_or_malformed_staff_user_ids_are_not_found(api: Api) -> None:
    admin = await api.staff_token()
    for user in (str(uuid.uuid4()), "not-a-uuid"):
        status, _, _ = await api.call("POST", f"/api/v1/staff-users/{user}/unlock", admin)
        assert status == 404
        status, _, _ = await api.call(
            "PATCH", f"/api/v1/staff-users/{user}", admin, json={"disabled": True}
        )
        assert status == 404


# --- Pages ----------------------------------------------------------------------------------------

TEMPORARY = re.compile(r'id="temporary-password-value">([^<]+)</code>')


async def test_staff_pages_temporary_password_forced_change_disable_and_sessions(
    stack: RunningStack, admin: Browser
) -> None:
    username = "clerk" + uuid.uuid4().hex[:8]
    await admin.get("/staff/admin/staff")
    page = await admin.post(
        "/staff/admin/staff",
        {"username": username, "display_name": "Clerk Kent", "role": "front_desk", "password": ""},
    )
    assert page.status == 200, page.text[:1000]
    found = TEMPORARY.search(page.text)
    assert found, page.text[:2000]
    temporary = html.unescape(found[1])
    row = next(r for r in page.text.split("<tr>")[1:] if f">{username}<" in r)
    user = re.findall(r'action="/staff/admin/staff/([0-9a-f-]{36})/disable"', row)[0]

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        clerk = Browser(http, stack.url)
        page = await clerk.sign_in(username, temporary)
        assert page.url.endswith("/staff/password") and "password-required" in page.text
        # Nothing else until the password is changed.
        page = await clerk.get("/staff/patients")
        assert page.url.endswith("/staff/password")
        page = await clerk.post(
            "/staff/password",
            {"current_password": temporary, "new_password": CHOSEN, "confirm_password": CHOSEN},
        )
        assert page.status == 200 and page.url.endswith("/staff/patients"), page.text[:1000]
        assert "Your password was changed." in page.text

        # The admin sees the session, ends it; then disables the user.
        page = await admin.get("/staff/admin/staff")
        assert username in page.text and 'id="staff-sessions"' in page.text
        page = await admin.post(f"/staff/admin/staff/{user}/disable")
        assert page.status == 200 and "Staff user changed." in page.text
        page = await clerk.get("/staff/patients")
        assert page.url.endswith("/staff/login")  # the session ended at once
        page = await clerk.sign_in(username, CHOSEN)
        assert page.status == 401

    page = await admin.post(f"/staff/admin/staff/{user}/enable")
    assert "Staff user changed." in page.text
    page = await admin.post(f"/staff/admin/staff/{user}/password-reset")
    found = TEMPORARY.search(page.text)
    assert found and html.unescape(found[1]) != temporary
