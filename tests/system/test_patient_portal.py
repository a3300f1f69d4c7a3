"""The patient portal's pages through the real gateway and identity, as a browser sees them:
cookies, CSRF tokens, redirects. Credentials are issued through the staff API."""

from __future__ import annotations

import hashlib
import itertools
import re
import time
import uuid
from collections.abc import AsyncIterator
from html import escape as html_escape
from typing import Any

import aiohttp
import asyncpg
import pytest
from yarl import URL

from services.identity import totp
from services.runtime.db import with_database
from tests.system.conftest import RunningStack

GENERIC = "Invalid username or password."
NEW_PASSWORD = "Juniper-Kettle-Morning-42"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_addresses = itertools.count(2)


def client(user_agent: str = "") -> aiohttp.ClientSession:
    """A browser-like client from a loopback address of its own (its own sign-in budget)."""
    connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{next(_addresses)}", 0))
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"User-Agent": user_agent} if user_agent else None,
    )


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with client() as session:
        yield session


async def issue_credentials(
    stack: RunningStack, realm: str = "onsite"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new patient allowed the portal, with credentials for `realm` (through the API)."""
    async with client() as http:

        async def call(method: str, path: str, token: str = "", body: Any = None) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.request(method, stack.url + path, json=body, headers=headers) as reply:
                assert reply.status < 300, await reply.text()
                return await reply.json()

        session = await call(
            "POST",
            "/api/v1/staff/sessions",
            body={"username": "admin", "password": stack.admin_password},
        )
        staff = session["token"]
        patient = await call(
            "POST",
            "/api/v1/patients",
            staff,
            {
                "first_name": "Grace" + uuid.uuid4().hex[:6],
                "last_name": "Portal" + uuid.uuid4().hex[:6],
                "date_of_birth": "1980-03-04",
                "sex": "female",
                "email": "grace@example.org",
            },
        )
        await call(
            "PATCH", f"/api/v1/patients/{patient['id']}", staff, {"allow_patient_portal": True}
        )
        issued = await call(
            "POST", f"/api/v1/patients/{patient['id']}/portal-credentials/{realm}", staff
        )
        return patient, issued


async def page(
    browser: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, str, aiohttp.ClientResponse]:
    async with browser.get(url, allow_redirects=False, **kwargs) as reply:
        return reply.status, await reply.text(), reply


async def with_cookie(stack: RunningStack, path: str, name: str, value: str) -> tuple[int, str]:
    """GET `path` sending only the cookie given (no jar): status and Location."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.get(
            stack.url + path, headers={"Cookie": f"{name}={value}"}, allow_redirects=False
        ) as reply,
    ):
        return reply.status, reply.headers.get("Location", "")


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no csrf_token in the form"
    return found.group(1)


async def submit(
    browser: aiohttp.ClientSession, stack: RunningStack, form_page: str, action: str, **fields: str
) -> tuple[int, str, str]:
    """Open `form_page`, then post its form (with its CSRF token) to `action`."""
    status, html, _ = await page(browser, stack.url + form_page)
    assert status == 200, html
    data = {"csrf_token": csrf_of(html), **fields}
    async with browser.post(stack.url + action, data=data, allow_redirects=False) as reply:
        return reply.status, await reply.text(), reply.headers.get("Location", "")


async def sign_in_page(
    browser: aiohttp.ClientSession, stack: RunningStack, realm: str, username: str, password: str
) -> tuple[int, str]:
    """Sign in on the realm's sign-in page: the status and page of the answer."""
    login = f"/portal/{realm}/login"
    status, html, _ = await submit(
        browser, stack, login, login, username=username, password=password
    )
    return status, html


async def own_password(
    browser: aiohttp.ClientSession, stack: RunningStack
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new patient signed in to the onsite portal with a password of their own (NEW_PASSWORD):
    the patient and the credentials issued."""
    patient, issued = await issue_credentials(stack, "onsite")
    base = "/portal/onsite/"
    status, _ = await sign_in_page(browser, stack, "onsite", issued["username"], issued["password"])
    assert status == 303
    status, _, location = await submit(
        browser,
        stack,
        base + "password",
        base + "password",
        current_password=issued["password"],
        new_password=NEW_PASSWORD,
        confirm_password=NEW_PASSWORD,
    )
    assert status == 303, location
    return patient, issued


def cookie(browser: aiohttp.ClientSession, stack: RunningStack, realm: str) -> str:
    found = browser.cookie_jar.filter_cookies(URL(f"{stack.url}/portal/{realm}/"))
    morsel = found.get(f"portal_{realm}")
    return morsel.value if morsel else ""


async def test_sign_in_forced_change_home_and_sign_out(
    stack: RunningStack, browser: aiohttp.ClientSession
) -> None:
    patient, issued = await issue_credentials(stack)
    base = "/portal/onsite/"

    # Not signed in: the realm's root and its pages lead to sign-in.
    status, _, reply = await page(browser, stack.url + base)
    assert (status, reply.headers["Location"]) == (302, base + "login")
    status, _, reply = await page(browser, stack.url + base + "home")
    assert (status, reply.headers["Location"]) == (302, base + "login")

    # A wrong password: the one generic message; the username typed is escaped back.
    status, html, _ = await submit(
        browser, stack, base + "login", base + "login", username="<b>x</b>", password="nope"
    )
    assert status == 401
    assert GENERIC in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html

    # The issued password signs in, straight to the password page.
    status, _, location = await submit(
        browser,
        stack,
        base + "login",
        base + "login",
        username=issued["username"],
        password=issued["password"],
    )
    assert (status, location) == (303, base + "password")
    first = cookie(browser, stack, "onsite")
    assert first

    # While the change is pending, every other page of the realm sends the patient there.
    for other in ("", "home", "profile", "forms", "appointments", "login"):
        status, _, reply = await page(browser, stack.url + base + other)
        assert status == 302, other
        assert reply.headers["Location"] in (base + "password", base + "home"), other
    status, _, reply = await page(browser, stack.url + base + "home")
    assert reply.headers["Location"] == base + "password"
    status, html, _ = await page(browser, stack.url + base + "password")
    assert status == 200
    assert 'aria-label="Portal"' not in html  # no navigation until the password changes
    assert "Sign out" in html

    # The gateway checks the confirmation; identity's policy speaks for itself.
    status, html, _ = await submit(
        browser,
        stack,
        base + "password",
        base + "password",
        current_password=issued["password"],
        new_password=NEW_PASSWORD,
        confirm_password=NEW_PASSWORD + "x",
    )
    assert status == 400 and "The new passwords do not match." in html
    status, html, _ = await submit(
        browser,
        stack,
        base + "password",
        base + "password",
        current_password=issued["password"],
        new_password="short",
        confirm_password="short",
    )
    assert status == 400
    assert 'id="f-new_password-error"' in html
    assert cookie(browser, stack, "onsite") == first  # nothing changed

    # A good password: a new session cookie, home with the first name.
    status, _, location = await submit(
        browser,
        stack,
        base + "password",
        base + "password",
        current_password=issued["password"],
        new_password=NEW_PASSWORD,
        confirm_password=NEW_PASSWORD,
    )
    assert status == 303 and location.startswith(base + "home")
    second = cookie(browser, stack, "onsite")
    assert second and second != first
    status, html, _ = await page(browser, stack.url + location)
    assert status == 200
    assert f"Welcome, {patient['first_name']}" in html
    assert "Your password has been changed." in html
    assert "Coming soon" not in html and 'aria-label="Portal"' in html
    for section in ("forms", "appointments", "refills", "records"):
        assert f'href="{base}{section}"' in html
    status, html, _ = await page(browser, stack.url + base + "profile")
    assert status == 200
    assert issued["username"] in html
    assert "4 March 1980" in html and "grace@example.org" in html
    assert patient["last_name"] in html

    # The old session ended with the change: its cookie only gets "session ended".
    assert await with_cookie(stack, base + "home", "portal_onsite", first) == (
        302,
        base + "login?notice=session-ended",
    )

    # Sign out: back to sign-in with a message, and home is closed again.
    status, _, location = await submit(browser, stack, base + "home", base + "logout")
    assert (status, location) == (303, base + "login?notice=signed-out")
    assert cookie(browser, stack, "onsite") == ""
    status, html, _ = await page(browser, stack.url + location)
    assert "You have signed out." in html
    status, _, reply = await page(browser, stack.url + base + "home")
    assert reply.headers["Location"] == base + "login"

    # The signed-out token is dead too; the patient is told only that the session ended.
    assert await with_cookie(stack, base + "home", "portal_onsite", second) == (
        302,
        base + "login?notice=session-ended",
    )
    status, html, _ = await page(browser, stack.url + base + "login?notice=session-ended")
    assert "Your session ended. Please sign in again." in html


async def test_signing_in_again_leads_back_to_the_page_asked_for(
    stack: RunningStack, browser: aiohttp.ClientSession
) -> None:
    _, issued = await own_password(browser, stack)
    base = "/portal/onsite/"
    await submit(browser, stack, base + "home", base + "logout")

    # Signed out, a page asked for sends to sign-in, which leads back to it.
    wanted = base + "appointments/find?type=x&from=2030-01-07"
    status, _, reply = await page(browser, stack.url + wanted)
    login = reply.headers["Location"]
    assert status == 302 and login.startswith(base + "login?next="), login
    status, html, _ = await page(browser, stack.url + login)
    assert f'name="next" value="{html_escape(wanted)}"' in html
    fields = {"username": issued["username"], "password": NEW_PASSWORD}
    status, _, location = await submit(browser, stack, login, base + "login", next=wanted, **fields)
    assert (status, location) == (303, wanted)

    # Anything but a page of this portal leads home: no way off the portal through sign-in.
    for elsewhere in (
        "https://evil.example/",
        "//evil.example/portal/onsite/",
        "/portal/offsite/appointments",
        base + "logout",
        "/\\evil.example",
    ):
        await submit(browser, stack, base + "home", base + "logout")
        status, _, location = await submit(
            browser, stack, base + "login", base + "login", next=elsewhere, **fields
        )
        assert (status, location) == (303, base + "home"), elsewhere


async def test_the_session_cookie_is_scoped_to_its_realm(
    stack: RunningStack, browser: aiohttp.ClientSession
) -> None:
    _, issued = await issue_credentials(stack, "onsite")
    status, _ = await sign_in_page(browser, stack, "onsite", issued["username"], issued["password"])
    assert status == 303

    # The cookie: HttpOnly, SameSite=Strict, only for the realm's path.
    jar = {c.key: c for c in browser.cookie_jar}
    morsel = jar["portal_onsite"]
    assert morsel["path"] == "/portal/onsite/"
    assert morsel["httponly"] and morsel["samesite"] == "Strict"

    # The offsite realm does not see it, and refuses it even when sent there by hand.
    status, _, reply = await page(browser, stack.url + "/portal/offsite/home")
    assert reply.headers["Location"] == "/portal/offsite/login"
    token = cookie(browser, stack, "onsite")
    status, location = await with_cookie(stack, "/portal/offsite/home", "portal_offsite", token)
    assert status == 302 and location.startswith("/portal/offsite/login")
    assert await with_cookie(stack, "/portal/onsite/home", "portal_onsite", token) == (
        302,
        "/portal/onsite/password",  # the same token opens its own realm
    )
    # Nor do onsite credentials sign in offsite.
    status, html, _ = await submit(
        browser,
        stack,
        "/portal/offsite/login",
        "/portal/offsite/login",
        username=issued["username"],
        password=issued["password"],
    )
    assert status == 401 and GENERIC in html

    # An unknown realm is simply not there.
    status, _, _ = await page(browser, stack.url + "/portal/elsewhere/")
    assert status == 404


async def test_a_post_without_its_csrf_token_is_refused(
    stack: RunningStack, browser: aiohttp.ClientSession
) -> None:
    _, issued = await issue_credentials(stack)
    status, _, _ = await page(browser, stack.url + "/portal/onsite/login")  # sets the CSRF cookie
    assert status == 200
    credentials = {"username": issued["username"], "password": issued["password"]}
    for token in (None, "forged"):
        data = dict(credentials) if token is None else {**credentials, "csrf_token": token}
        async with browser.post(
            stack.url + "/portal/onsite/login", data=data, allow_redirects=False
        ) as reply:
            assert reply.status == 403
    assert cookie(browser, stack, "onsite") == ""
    async with browser.post(
        stack.url + "/portal/onsite/logout", data={}, allow_redirects=False
    ) as reply:
        assert reply.status == 403


async def test_an_expired_temporary_password_says_so(
    stack: RunningStack, browser: aiohttp.ClientSession
) -> None:
    _, issued = await issue_credentials(stack, "offsite")
    url = with_database(stack.stack.config.database_url or "", stack.stack.database("identity"))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "UPDATE portal_accounts SET temporary_expires_at = now() - interval '1 minute' "
            "WHERE lower(username) = lower($1)",
            issued["username"],
        )
    finally:
        await conn.close()
    status, html, _ = await submit(
        browser,
        stack,
        "/portal/offsite/login",
        "/portal/offsite/login",
        username=issued["username"],
        password=issued["password"],
    )
    assert status == 403
    assert "Your temporary password has expired. Please ask the clinic for a new one." in html
    assert cookie(browser, stack, "offsite") == ""


async def test_patient_sessions_keep_the_user_agent(stack: RunningStack) -> None:
    """Each way a patient signs in (either realm's page, with the password alone or then a
    code, and the API) keeps the browser's User-Agent with the session, as staff sign-ins do."""
    agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) PortalTest/4.0 " + "z" * 300
    kept = agent[:256]  # identity keeps at most 256 characters
    url = with_database(stack.stack.config.database_url or "", stack.stack.database("identity"))

    async def recorded(token: str) -> str:
        assert token
        conn = await asyncpg.connect(url)
        try:
            found: str = await conn.fetchval(
                "SELECT user_agent FROM sessions WHERE token_hash = $1 AND kind = 'patient'",
                hashlib.sha256(token.encode()).digest(),
            )
        finally:
            await conn.close()
        return found

    async def call(path: str, token: str = "", body: Any = None) -> aiohttp.ClientResponse:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            client(agent) as http,
            http.post(stack.url + path, json=body, headers=headers) as reply,
        ):
            await reply.read()
            assert reply.ok, await reply.text()
            return reply

    async def api_sign_in(realm: str, username: str, password: str) -> str:
        reply = await call(
            f"/api/v1/portal/{realm}/sessions", body={"username": username, "password": password}
        )
        return str((await reply.json())["token"])

    for realm in ("onsite", "offsite"):
        _, issued = await issue_credentials(stack, realm)
        async with client(agent) as browser:
            status, _ = await sign_in_page(
                browser, stack, realm, issued["username"], issued["password"]
            )
            assert status == 303
            assert await recorded(cookie(browser, stack, realm)) == kept, realm
        token = await api_sign_in(realm, issued["username"], issued["password"])
        assert await recorded(token) == kept, realm

    # The sign-in page's second step (two-factor sign-in set up through the API).
    _, issued = await issue_credentials(stack)
    first = await api_sign_in("onsite", issued["username"], issued["password"])
    changed = await call(
        "/api/v1/portal/password",
        first,
        {"current_password": issued["password"], "new_password": NEW_PASSWORD},
    )
    token = changed.headers["X-Session-Token"]
    assert await recorded(token) == kept  # the password change's new session too
    secret = (await (await call("/api/v1/portal/mfa/totp", token)).json())["secret"]
    earlier = totp.code_at(secret, time.time() - totp.STEP_SECONDS)
    await call("/api/v1/portal/mfa/totp/confirm", token, {"code": earlier})
    async with client(agent) as browser:
        status, html = await sign_in_page(
            browser, stack, "onsite", issued["username"], NEW_PASSWORD
        )
        challenge = re.search(r'name="challenge" value="([^"]+)"', html)
        assert status == 200 and challenge, html
        async with browser.post(
            stack.url + "/portal/onsite/login/mfa",
            data={
                "csrf_token": csrf_of(html),
                "challenge": challenge.group(1),
                "code": totp.code_at(secret, time.time()),
            },
            allow_redirects=False,
        ) as reply:
            assert reply.status == 303, await reply.text()
        assert await recorded(cookie(browser, stack, "onsite")) == kept


async def test_sign_in_is_rate_limited(stack: RunningStack, browser: aiohttp.ClientSession) -> None:
    _, html, _ = await page(browser, stack.url + "/portal/onsite/login")
    token = csrf_of(html)
    statuses = []
    for _ in range(60):
        async with browser.post(
            stack.url + "/portal/onsite/login",
            data={"csrf_token": token, "username": "nobody", "password": "wrong"},
            allow_redirects=False,
        ) as reply:
            statuses.append(reply.status)
            if reply.status == 429:
                assert "Too many sign-in attempts" in await reply.text()
                assert int(reply.headers["Retry-After"]) >= 1
                break
    assert statuses[-1] == 429
    assert len(statuses) > 20 and set(statuses[:-1]) == {401}
