"""Deployment edges in the gateway, in process: `__Host-` cookie names over HTTPS, the staff
portal only on its own host / from allowed networks, HSTS."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer

from portal.identity.v1 import identity_pb2 as pb
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.runtime.settings import ConfigError
from tests.conftest import TEST_GATEWAY_ENV
from tests.unit.gateway.stubs import SESSIONS, STAFF_TOKEN, StubBackends

STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}


def client(**env: str) -> TestClient[Any, Any]:
    settings = GatewaySettings.from_env({**TEST_GATEWAY_ENV, **env})
    backends = StubBackends()
    backends.identity.replies["StaffSignIn"] = pb.SessionGrant(
        token=STAFF_TOKEN, session=SESSIONS[STAFF_TOKEN]
    )
    backends.identity.replies["EndSession"] = pb.EndSessionResponse()
    app = create_app(settings, backends=backends.as_backends())
    # No jar: the test sends exactly the cookies it names (a jar keeps Secure ones from http).
    return TestClient(TestServer(app), cookie_jar=DummyCookieJar())


async def sign_in_on_page(http: TestClient[Any, Any], csrf_cookie: str) -> Any:
    page = await http.get("/staff/login")
    seed = page.cookies[csrf_cookie].value
    found = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert found
    return await http.post(
        "/staff/login",
        data={"csrf_token": found[1], "username": "admin", "password": "pw"},
        headers={"Cookie": f"{csrf_cookie}={seed}"},
        allow_redirects=False,
    )


# --- cookie names ------------------------------------------------------------------------------


async def test_over_https_cookies_are_host_prefixed_with_path_root() -> None:
    async with client(PORTAL_COOKIE_SECURE="true") as http:
        reply = await sign_in_on_page(http, "__Host-portal_csrf")
        assert reply.status == 303
        cookie = reply.cookies["__Host-portal_staff"]
        assert cookie.value == STAFF_TOKEN
        assert cookie["path"] == "/" and cookie["secure"] and not cookie["domain"]
        assert "portal_staff" not in reply.cookies
        assert reply.headers["Strict-Transport-Security"].startswith("max-age=")
        # The prefixed cookie is the one read back; the bare name no longer opens a session.
        # (the sign-in page sends a signed-in member on to the patients page).
        prefixed = {"Cookie": f"__Host-portal_staff={STAFF_TOKEN}"}
        page = await http.get("/staff/login", headers=prefixed, allow_redirects=False)
        assert page.status == 303
        bare = {"Cookie": f"portal_staff={STAFF_TOKEN}"}
        assert (await http.get("/staff/login", headers=bare, allow_redirects=False)).status == 200


async def test_over_http_cookies_keep_their_plain_names() -> None:
    async with client(PORTAL_COOKIE_SECURE="false") as http:
        reply = await sign_in_on_page(http, "portal_csrf")
        assert reply.status == 303
        assert reply.cookies["portal_staff"].value == STAFF_TOKEN
        assert not reply.cookies["portal_staff"]["secure"]
        assert "Strict-Transport-Security" not in reply.headers


async def test_patient_realm_cookies_use_path_root_over_https() -> None:
    async with client(PORTAL_COOKIE_SECURE="true") as http:
        # Signing out clears both forms of the realm's cookie.
        page = await http.get("/portal/onsite/login")
        seed = page.cookies["__Host-portal_csrf"].value
        found = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
        assert found
        reply = await http.post(
            "/portal/onsite/logout",
            data={"csrf_token": found[1]},
            headers={"Cookie": f"__Host-portal_csrf={seed}"},
            allow_redirects=False,
        )
        assert reply.cookies["__Host-portal_onsite"]["path"] == "/"
        assert reply.cookies["portal_onsite"]["path"] == "/portal/onsite/"


# --- the staff portal's own host and networks ----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "method"),
    [("/staff/login", "GET"), ("/api/v1/patients?q=ada", "GET"), ("/staff/", "GET")],
)
async def test_staff_paths_are_404_on_other_hosts(path: str, method: str) -> None:
    async with client(PORTAL_STAFF_HOST="staff.example.org") as http:
        elsewhere = await http.request(
            method, path, headers={**STAFF, "Host": "portal.example.org"}, allow_redirects=False
        )
        assert elsewhere.status == 404
        own = await http.request(
            method, path, headers={**STAFF, "Host": "Staff.Example.org:443"}, allow_redirects=False
        )
        assert own.status != 404


async def test_patient_paths_answer_on_every_host() -> None:
    async with client(PORTAL_STAFF_HOST="staff.example.org") as http:
        host = {"Host": "portal.example.org"}
        assert (await http.get("/portal/onsite/login", headers=host)).status == 200
        assert (await http.get("/api/v1/openapi.json", headers=host)).status == 200


async def test_staff_paths_are_404_outside_the_allowed_networks() -> None:
    async with client(PORTAL_STAFF_ALLOWED_NETWORKS="10.0.0.0/8") as http:
        assert (await http.get("/staff/login")).status == 404
        assert (await http.get("/api/v1/patients?q=ada", headers=STAFF)).status == 404
        assert (await http.get("/portal/onsite/login")).status == 200
    async with client(PORTAL_STAFF_ALLOWED_NETWORKS="127.0.0.0/8, ::1") as http:
        assert (await http.get("/staff/login")).status == 200


async def test_allowed_networks_judge_the_forwarded_address_behind_a_trusted_proxy() -> None:
    env = {"PORTAL_STAFF_ALLOWED_NETWORKS": "192.168.0.0/16", "PORTAL_TRUSTED_PROXIES": "127.0.0.1"}
    async with client(**env) as http:
        inside = {"X-Forwarded-For": "192.168.4.2"}
        outside = {"X-Forwarded-For": "203.0.113.5"}
        assert (await http.get("/staff/login", headers=inside)).status == 200
        assert (await http.get("/staff/login", headers=outside)).status == 404


def test_staff_host_and_networks_settings_are_checked() -> None:
    settings = GatewaySettings.from_env({**TEST_GATEWAY_ENV, "PORTAL_STAFF_HOST": "Staff.X.org."})
    assert settings.staff_host == "staff.x.org"
    assert GatewaySettings.from_env(TEST_GATEWAY_ENV).staff_host is None
    with pytest.raises(ConfigError, match="PORTAL_STAFF_HOST"):
        GatewaySettings.from_env({**TEST_GATEWAY_ENV, "PORTAL_STAFF_HOST": "https://x.org/"})
    with pytest.raises(ConfigError, match="PORTAL_STAFF_ALLOWED_NETWORKS"):
        GatewaySettings.from_env({**TEST_GATEWAY_ENV, "PORTAL_STAFF_ALLOWED_NETWORKS": "nope"})
