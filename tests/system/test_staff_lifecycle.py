"""Staff lifecycle through the real gateway and identity: the JSON API's staff-user routes."""

from __future__ import annotations

import html
import re
import uuid
from typing import Any

import aiohttp

from services.identity import lockout
from tests.system.conftest import RunningStack
from tests.system.test_api import Api
from tests.system.test_api import api as api
from tests.system.test_api import http as http
from tests.system.test_api_mfa import code
from tests.system.test_staff_pages import Browser
from tests.system.test_staff_pages import admin as admin
from tests.system.test_staff_pages import browser as browser

CHOSEN = "Quartz-Lantern-Evening-77"


async def new_clinician(api: Api, admin: str, username: str) -> tuple[str, str]:
    """A new clinician's id and token, past the first sign-in's password change (to CHOSEN)."""
    return await new_staff_member(api, admin, username, "clinician")


async def new_staff_member(api: Api, admin: str, username: str, role: str) -> tuple[str, str]:
    """A new staff member's id and token, past the first sign-in's password change (to
    CHOSEN)."""
    status, created, _ = await api.call(
        "POST",
        "/api/v1/staff-users",
        admin,
        json={"username": username, "display_name": "Staff " + username, "role": role},
    )
    assert status == 201, created
    status, session, _ = await api.call(
        "POST",
        "/api/v1/staff/sessions",
        json={"username": username, "password": created["temporary_password"]},
    )
    assert status == 201, session
    status, _, _ = await api.call(
        "POST",
        "/api/v1/staff/password",
        session["token"],
        json={"current_password": created["temporary_password"], "new_password": CHOSEN},
    )
    assert status == 204
    status, session, _ = await api.call(
        "POST", "/api/v1/staff/sessions", json={"username": username, "password": CHOSEN}
    )
    assert status == 201, session
    return str(created["id"]), str(session["token"])


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


# --- Two-factor sign-in required per role ---------------------------------------------------------

MANUAL_KEY = re.compile(r'<code id="manual-key">([A-Z2-7]+)</code>')


async def test_a_role_that_requires_two_factor_admits_only_enrolment_api(api: Api) -> None:
    admin = await api.staff_token()
    username = "doc" + uuid.uuid4().hex[:8]
    status, created, _ = await api.call(
        "POST",
        "/api/v1/staff-users",
        admin,
        json={"username": username, "display_name": "Doc Brown", "role": "clinician"},
    )
    assert status == 201, created
    status, policy, _ = await api.call(
        "PUT", "/api/v1/staff-mfa-policy", admin, json={"required_roles": ["clinician"]}
    )
    assert status == 200 and policy == {"required_roles": ["clinician"]}
    try:
        status, read, _ = await api.call("GET", "/api/v1/staff-mfa-policy", admin)
        assert status == 200 and read == policy

        # A temporary password comes first: the answer says so, not the factor yet.
        temporary = created["temporary_password"]
        status, session, _ = await api.call(
            "POST", "/api/v1/staff/sessions", json={"username": username, "password": temporary}
        )
        assert status == 201 and session["must_change_password"], session
        assert session["mfa_enrolment_required"] is False
        status, problem, _ = await api.call("GET", "/api/v1/patients?q=x", session["token"])
        assert status == 403 and problem["code"] == "PASSWORD_CHANGE_REQUIRED"
        status, _, _ = await api.call(
            "POST",
            "/api/v1/staff/password",
            session["token"],
            json={"current_password": temporary, "new_password": CHOSEN},
        )
        assert status == 204

        # Then only the enrolment is open, with a clear answer everywhere else.
        status, session, _ = await api.call(
            "POST", "/api/v1/staff/sessions", json={"username": username, "password": CHOSEN}
        )
        assert status == 201 and session["mfa_enrolment_required"] is True, session
        token = session["token"]
        for method, path in (("GET", "/api/v1/patients?q=x"), ("GET", "/api/v1/providers")):
            status, problem, _ = await api.call(method, path, token)
            assert status == 403 and problem["code"] == "MFA_ENROLMENT_REQUIRED", problem
            assert "/api/v1/staff/mfa/totp" in problem["detail"]
        status, enrolment, _ = await api.call("POST", "/api/v1/staff/mfa/totp", token)
        assert status == 201, enrolment
        status, confirmed, _ = await api.call(
            "POST",
            "/api/v1/staff/mfa/totp/confirm",
            token,
            json={"code": code(enrolment["secret"])},
        )
        assert status == 200 and len(confirmed["recovery_codes"]) == 10

        # Enrolled: the same token works, the factor cannot be removed, sign-in takes two steps.
        status, _, _ = await api.call("GET", "/api/v1/patients?q=x", token)
        assert status == 200
        status, problem, _ = await api.call(
            "DELETE", "/api/v1/staff/mfa/totp", token, json={"code": code(enrolment["secret"])}
        )
        assert status == 409 and problem["code"] == "MFA_REQUIRED"
        status, answer, _ = await api.call(
            "POST", "/api/v1/staff/sessions", json={"username": username, "password": CHOSEN}
        )
        assert status == 200 and answer["mfa_required"] is True

        # Only admins read or change the setting.
        for method, body in (("GET", None), ("PUT", {"required_roles": []})):
            status, _, _ = await api.call(method, "/api/v1/staff-mfa-policy", token, json=body)
            assert status == 403

        # A lost phone: an admin removes the factor; the role still requires one, so the
        # user's session is back to enrolment only.
        status, listed, _ = await api.call("GET", "/api/v1/staff-users", admin)
        assert next(u for u in listed["items"] if u["id"] == created["id"])["mfa_enrolled"]
        status, _, _ = await api.call("DELETE", f"/api/v1/staff-users/{created['id']}/mfa", token)
        assert status == 403  # not an admin
        status, _, _ = await api.call("DELETE", f"/api/v1/staff-users/{created['id']}/mfa", admin)
        assert status == 204
        status, listed, _ = await api.call("GET", "/api/v1/staff-users", admin)
        assert not next(u for u in listed["items"] if u["id"] == created["id"])["mfa_enrolled"]
        status, problem, _ = await api.call("GET", "/api/v1/patients?q=x", token)
        assert status == 403 and problem["code"] == "MFA_ENROLMENT_REQUIRED"
        status, _, _ = await api.call("DELETE", f"/api/v1/staff-users/{uuid.uuid4()}/mfa", admin)
        assert status == 404
    finally:
        status, _, _ = await api.call(
            "PUT", "/api/v1/staff-mfa-policy", admin, json={"required_roles": []}
        )
        assert status == 200


async def test_a_role_that_requires_two_factor_sends_its_staff_to_enrol_pages(
    stack: RunningStack, admin: Browser
) -> None:
    username = "desk" + uuid.uuid4().hex[:8]
    await admin.get("/staff/admin/staff")
    page = await admin.post(
        "/staff/admin/staff",
        {
            "username": username,
            "display_name": "Desk Clerk",
            "role": "front_desk",
            "password": CHOSEN,
        },
    )
    assert page.status == 200 and "Staff user added." in page.text, page.text[:1000]
    page = await admin.post("/staff/admin/staff/mfa-policy", {"required_front_desk": "1"})
    assert page.status == 200 and "Two-factor sign-in setting saved." in page.text
    assert re.search(r'id="mfa-required-front_desk"[^>]*checked', page.text)
    assert not re.search(r'id="mfa-required-admin"[^>]*checked', page.text)
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            clerk = Browser(http, stack.url)
            page = await clerk.sign_in(username, CHOSEN)
            assert page.url.endswith("/staff/account/two-factor"), page.url
            assert 'id="mfa-required"' in page.text
            for path in ("/staff/patients", "/staff/practice", "/staff/password"):
                page = await clerk.get(path)
                assert page.url.endswith("/staff/account/two-factor"), (path, page.url)
            page = await clerk.post("/staff/account/two-factor/start")
            found = MANUAL_KEY.search(page.text)
            assert page.status == 200 and found, page.text[:2000]
            secret = found[1]
            otpauth = re.search(r'name="otpauth_uri" value="([^"]+)"', page.text)
            assert otpauth
            page = await clerk.post(
                "/staff/account/two-factor/confirm",
                {"code": code(secret), "secret": secret, "otpauth_uri": html.unescape(otpauth[1])},
            )
            assert page.status == 200 and 'id="recovery-codes"' in page.text, page.text[:2000]
            assert 'id="mfa-continue"' in page.text
            page = await clerk.get("/staff/patients")
            assert page.status == 200 and page.url.endswith("/staff/patients")
            # Their role requires it: the page says so instead of offering to turn it off.
            page = await clerk.get("/staff/account/two-factor")
            assert page.status == 200 and 'id="mfa-removal-refused"' in page.text
            assert "required for your role" in page.text
            assert "/staff/account/two-factor/remove" not in page.text

            # The admin sees the factor and removes it: the clerk must enrol again.
            page = await admin.get("/staff/admin/staff")
            assert f'id="mfa-reset-{username}"' in page.text
            user = re.findall(r'action="/staff/admin/staff/([0-9a-f-]{36})/mfa-reset"', page.text)
            row = next(r for r in page.text.split("<tr>")[1:] if f">{username}<" in r)
            (user_id,) = [u for u in user if u in row]
            page = await admin.post(f"/staff/admin/staff/{user_id}/mfa-reset")
            assert page.status == 200 and "Two-factor sign-in removed" in page.text
            assert f'id="mfa-reset-{username}"' not in page.text
            page = await clerk.get("/staff/patients")
            assert page.url.endswith("/staff/account/two-factor")
    finally:
        page = await admin.post("/staff/admin/staff/mfa-policy", {})
        assert "Two-factor sign-in setting saved." in page.text
        assert not re.search(r'id="mfa-required-front_desk"[^>]*checked', page.text)


# --- Sessions of a staff user through the API ---------------------------------------------------


async def test_admin_lists_and_ends_a_staff_users_sessions_api(api: Api) -> None:
    admin = await api.staff_token()
    username = "ward" + uuid.uuid4().hex[:8]
    status, created, _ = await api.call(
        "POST",
        "/api/v1/staff-users",
        admin,
        json={"username": username, "display_name": "Ward Clerk", "role": "front_desk"},
    )
    assert status == 201
    user = created["id"]
    status, _, _ = await api.call(
        "POST",
        "/api/v1/staff/sessions",
        json={"username": username, "password": created["temporary_password"]},
    )
    assert status == 201
    status, listed, _ = await api.call("GET", f"/api/v1/staff-users/{user}/sessions", admin)
    assert status == 200 and len(listed["items"]) == 1
    before = {s["id"] for s in listed["items"]}
    status, session, _ = await api.call(
        "POST",
        "/api/v1/staff/sessions",
        json={"username": username, "password": created["temporary_password"]},
    )
    assert status == 201
    token = session["token"]
    status, listed, _ = await api.call("GET", f"/api/v1/staff-users/{user}/sessions", admin)
    assert status == 200
    (mine,) = [s for s in listed["items"] if s["id"] not in before]
    assert mine["created_at"] and mine["last_seen_at"] and mine["expires_at"]
    assert mine["address"].startswith("127.0.0.")  # this test client's own loopback address
    assert not any("token" in key for s in listed["items"] for key in s)  # never a token

    # Another user's id in the path does not reach this session.
    status, me, _ = await api.call("GET", "/api/v1/staff-users", admin)
    admin_id = next(u["id"] for u in me["items"] if u["username"] == "admin")
    status, _, _ = await api.call(
        "DELETE", f"/api/v1/staff-users/{admin_id}/sessions/{mine['id']}", admin
    )
    assert status == 404
    status, _, _ = await api.call(
        "DELETE", f"/api/v1/staff-users/{user}/sessions/{mine['id']}", admin
    )
    assert status == 204
    status, _, _ = await api.call("GET", "/api/v1/patients?q=x", token)
    assert status == 401  # ended at once
    status, _, _ = await api.call(
        "DELETE", f"/api/v1/staff-users/{user}/sessions/{mine['id']}", admin
    )
    assert status == 404
    status, listed, _ = await api.call("GET", f"/api/v1/staff-users/{user}/sessions", admin)
    assert {s["id"] for s in listed["items"]} == before
    for path in (
        f"/api/v1/staff-users/{uuid.uuid4()}/sessions",
        "/api/v1/staff-users/not-an-id/sessions",
    ):
        status, _, _ = await api.call("GET", path, admin)
        assert status == 404
    status, _, _ = await api.call(
        "DELETE", f"/api/v1/staff-users/{user}/sessions/not-a-session", admin
    )
    assert status == 404


# --- The device cookie ---------------------------------------------------------------------------


def device_cookies(headers: Any) -> list[str]:
    return [c for c in headers.getall("Set-Cookie", []) if "_device=" in c]


async def test_only_sign_in_pages_set_the_device_cookie(stack: RunningStack, api: Api) -> None:
    staff = await api.staff_token()
    patient, issued = await api.portal_patient(staff)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        b = Browser(http, stack.url)
        await b.get("/staff/login")
        await b.post(
            "/staff/login",
            {"username": "admin", "password": stack.admin_password},
            follow=False,
        )
        (staff_device,) = device_cookies(b.last_headers)
        assert (
            staff_device.startswith("portal_staff_device=") and "Path=/staff/login" in staff_device
        )
        assert "HttpOnly" in staff_device and "SameSite=Strict" in staff_device
        # Pages and API answers other than a sign-in page's never set one.
        for path in ("/staff/patients", f"/staff/patients/{patient['id']}", "/portal/onsite/login"):
            async with http.get(stack.url + path) as reply:
                assert reply.status == 200, path
                assert device_cookies(reply.headers) == [], path
        await b.get("/portal/onsite/login")
        await b.post(
            "/portal/onsite/login",
            {"username": issued["username"], "password": issued["password"]},
            follow=False,
        )
        (patient_device,) = device_cookies(b.last_headers)
        assert patient_device.startswith("portal_onsite_device=")
        assert "Path=/portal/onsite/login" in patient_device
    # API sign-ins (staff and patient) answer no cookie at all.
    for path, body in (
        ("/api/v1/staff/sessions", {"username": "admin", "password": stack.admin_password}),
        (
            "/api/v1/portal/onsite/sessions",
            {"username": issued["username"], "password": issued["password"]},
        ),
    ):
        async with aiohttp.ClientSession() as http, http.post(stack.url + path, json=body) as reply:
            assert reply.status == 201, await reply.text()
            assert reply.headers.getall("Set-Cookie", []) == [], path


CHALLENGE = re.compile(r'name="challenge" value="([^"]+)"')


def browser_from(address: str) -> aiohttp.ClientSession:
    """A cookie-keeping client from a loopback address of its own (its own sign-in budget)."""
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        connector=aiohttp.TCPConnector(local_addr=(address, 0)),
    )


async def two_step_page_sign_in(b: Browser, login: str, fields: dict[str, str], code: str) -> str:
    """Sign in through a sign-in page and its second step; the device cookie the second step
    set ("" for none). The first step sets none: the password alone earns no device."""
    await b.get(login)
    page = await b.post(login, fields, follow=False)
    challenge = CHALLENGE.search(page.text)
    assert page.status == 200 and challenge, page.text[:1000]
    assert device_cookies(b.last_headers) == []
    page = await b.post(login + "/mfa", {"challenge": challenge[1], "code": code}, follow=False)
    assert page.status == 303, page.text[:1000]
    (device,) = device_cookies(b.last_headers) or [""]
    return device


async def test_a_sign_in_with_a_second_factor_sets_the_device_cookie_too(
    stack: RunningStack, api: Api
) -> None:
    admin = await api.staff_token()
    username = "scribe" + uuid.uuid4().hex[:8]
    _, token = await new_clinician(api, admin, username)
    status, enrolment, _ = await api.call("POST", "/api/v1/staff/mfa/totp", token)
    assert status == 201
    secret = enrolment["secret"]
    status, _, _ = await api.call(
        "POST", "/api/v1/staff/mfa/totp/confirm", token, json={"code": code(secret, -1)}
    )
    assert status == 200
    fields = {"username": username, "password": CHOSEN}

    async with browser_from("127.0.3.1") as http:
        b = Browser(http, stack.url)
        device = await two_step_page_sign_in(b, "/staff/login", fields, code(secret))
        assert device.startswith("portal_staff_device=") and "Path=/staff/login" in device
        assert "HttpOnly" in device and "SameSite=Strict" in device
        await b.post("/staff/logout")

        # Guesses elsewhere lock the account; this browser's device still signs in (and keeps
        # its cookie rather than getting another).
        for i in range(lockout.FAILURES_BEFORE_LOCK):
            status, _, _ = await api.call(
                "POST", "/api/v1/staff/sessions", json={"username": username, "password": f"x{i}"}
            )
            assert status == 401
        status, _, _ = await api.call("POST", "/api/v1/staff/sessions", json=fields)
        assert status == 401  # locked for everyone else
        assert await two_step_page_sign_in(b, "/staff/login", fields, code(secret, 1)) == ""
        page = await b.get("/staff/patients")
        assert page.status == 200 and page.url.endswith("/staff/patients")

    # A patient's second step sets the realm's device cookie in the same way.
    _, issued = await api.portal_patient(admin)
    first = await api.patient_token("onsite", issued["username"], issued["password"])
    status, _, token = await api.change_password(first, issued["password"], CHOSEN)
    assert status == 204
    status, enrolment, _ = await api.call("POST", "/api/v1/portal/mfa/totp", token)
    secret = enrolment["secret"]
    status, _, _ = await api.call(
        "POST", "/api/v1/portal/mfa/totp/confirm", token, json={"code": code(secret, -1)}
    )
    assert status == 200
    async with browser_from("127.0.3.2") as http:
        b = Browser(http, stack.url)
        device = await two_step_page_sign_in(
            b,
            "/portal/onsite/login",
            {"username": issued["username"], "password": CHOSEN},
            code(secret),
        )
        assert device.startswith("portal_onsite_device=")
        assert "Path=/portal/onsite/login" in device


async def test_staff_sessions_show_the_user_agent_they_began_with(
    stack: RunningStack, api: Api, admin: Browser
) -> None:
    token = await api.staff_token()
    username = "agent" + uuid.uuid4().hex[:8]
    status, created, _ = await api.call(
        "POST",
        "/api/v1/staff-users",
        token,
        json={"username": username, "display_name": "Field Agent", "role": "front_desk"},
    )
    assert status == 201
    marker = "PortalAgent-" + uuid.uuid4().hex
    agent = f"Mozilla/5.0 (X11; Linux x86_64) {marker} " + "y" * 400
    status, _, _ = await api.call(
        "POST",
        "/api/v1/staff/sessions",
        json={"username": username, "password": created["temporary_password"]},
        headers={"User-Agent": agent},
    )
    assert status == 201
    status, listed, _ = await api.call(
        "GET", f"/api/v1/staff-users/{created['id']}/sessions", token
    )
    assert status == 200
    (session,) = listed["items"]
    assert session["user_agent"] == agent[:256]  # bounded
    page = await admin.get("/staff/admin/staff")
    row = next(r for r in page.text.split("<tr>")[1:] if f">{username}<" in r and marker in r)
    assert f'<td data-label="Browser" class="user-agent">{agent[:256]}</td>' in row
    # No process logs it.
    for log in stack.stack.log_dir.glob("*.log"):
        assert marker not in log.read_text(errors="replace"), log.name
