"""Lockout that cannot lock people out, through the running gateway and identity: guesses from
elsewhere lock the account for every client without a device cookie, while the browser that
signed in before keeps its own budget; an admin unlocks the rest."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from services.identity import lockout
from tests.system.conftest import RunningStack
from tests.system.test_api import Api, api, http
from tests.system.test_staff_pages import Browser, admin, browser

__all__ = ["admin", "api", "browser", "http"]  # the fixtures, shared with other modules

pytestmark = pytest.mark.system
PASSWORD = "Quartz-Lantern-Evening-77"


def jar() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_guesses_elsewhere_do_not_lock_out_the_device_that_signed_in_before(
    stack: RunningStack, api: Api, admin: Browser
) -> None:
    username = "tech" + uuid.uuid4().hex[:8]
    await admin.get("/staff/admin/staff")
    page = await admin.post(
        "/staff/admin/staff",
        {
            "username": username,
            "display_name": "Lab Tech",
            "role": "clinician",
            "password": PASSWORD,
        },
    )
    assert "Staff user added." in page.text, page.text[:1000]

    async with jar() as own, jar() as elsewhere:
        user = Browser(own, stack.url)
        page = await user.sign_in(username, PASSWORD)
        assert page.url.endswith("/staff/patients")  # and the device cookie is kept
        await user.post("/staff/logout")

        # An attacker without the cookie guesses until the account is locked for them.
        for i in range(lockout.FAILURES_BEFORE_LOCK + 1):
            status, _, _ = await api.call(
                "POST", "/api/v1/staff/sessions", json={"username": username, "password": f"x{i}"}
            )
            assert status == 401
        status, _, _ = await api.call(
            "POST", "/api/v1/staff/sessions", json={"username": username, "password": PASSWORD}
        )
        assert status == 401  # locked: even the right password
        page = await Browser(elsewhere, stack.url).sign_in(username, PASSWORD)
        assert page.status == 401  # so is any other browser

        # The user's own browser still signs in.
        page = await user.sign_in(username, PASSWORD)
        assert page.status == 200 and page.url.endswith("/staff/patients"), page.url

    # An admin unlocks the account for everyone else.
    staff = await api.staff_token()
    status, listed, _ = await api.call("GET", "/api/v1/staff-users", staff)
    found = next(u for u in listed["items"] if u["username"] == username)
    assert found["locked_until"] is not None
    status, _, _ = await api.call("POST", f"/api/v1/staff-users/{found['id']}/unlock", staff)
    assert status == 204
    status, _, _ = await api.call(
        "POST", "/api/v1/staff/sessions", json={"username": username, "password": PASSWORD}
    )
    assert status == 201
