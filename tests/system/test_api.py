"""The JSON API /api/v1 through the real gateway and identity: the whole credential lifecycle,
lockout, temporary-password expiry, realm and patient isolation, bad input, and the OpenAPI
document against the real router."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import asyncpg
import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.runtime.db import with_database
from tests.conftest import TEST_GATEWAY_ENV
from tests.integration.events import eventually
from tests.system.conftest import RunningStack
from tests.system.openapi_check import Contract

GENERIC = "Invalid username or password."
NEW_PASSWORD = "Juniper-Kettle-Morning-42"
_addresses = itertools.count(2)


def unique_letters(length: int = 8) -> str:
    """Letters only: names are searched by their letter runs, so digits would split them."""
    return uuid.uuid4().hex[:length].translate(str.maketrans("0123456789", "ghijklmnop"))


# --- Helpers ------------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client from a loopback address of its own, so each test has its own sign-in budget
    under the gateway's per-address rate limit."""
    address = f"127.0.0.{next(_addresses)}"
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


class Api:
    """Calls the API; every answer is checked against the document the gateway serves."""

    contracts: dict[str, Contract] = {}  # one document per stack

    def __init__(self, http: aiohttp.ClientSession, stack: RunningStack) -> None:
        self.http = http
        self.stack = stack

    async def contract(self) -> Contract:
        if self.stack.url not in self.contracts:
            async with self.http.get(f"{self.stack.url}/api/v1/openapi.json") as reply:
                self.contracts[self.stack.url] = Contract(await reply.json())
        return self.contracts[self.stack.url]

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        data: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, Mapping[str, str]]:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, f"{self.stack.url}{path}", json=json, data=data, headers=sent
        ) as reply:
            if reply.status >= 400:
                assert reply.content_type == "application/problem+json", await reply.text()
            body = await reply.json(content_type=None) if reply.status != 204 else None
        (await self.contract()).check(method, path, reply.status, body)
        return reply.status, body, reply.headers

    async def staff_token(self) -> str:
        status, body, _ = await self.call(
            "POST",
            "/api/v1/staff/sessions",
            json={"username": "admin", "password": self.stack.admin_password},
        )
        assert status == 201, body
        return str(body["token"])

    async def new_patient(self, staff: str, **extra: Any) -> dict[str, Any]:
        fields = {
            "first_name": "Ada" + unique_letters(),
            "last_name": "Tester" + unique_letters(),
            "date_of_birth": "1980-03-04",
            "sex": "female",
            "email": "ada@example.org",
            **extra,
        }
        status, body, _ = await self.call("POST", "/api/v1/patients", staff, json=fields)
        assert status == 201, body
        return dict(body)

    async def portal_patient(
        self, staff: str, realm: str = "onsite", username: str = ""
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A patient allowed the portal with fresh credentials in `realm`."""
        patient = await self.new_patient(staff)
        status, body, _ = await self.call(
            "PATCH", f"/api/v1/patients/{patient['id']}", staff, json={"allow_patient_portal": True}
        )
        assert status == 200 and body["allow_patient_portal"] is True, body
        request = {"username": username} if username else None
        status, issued, _ = await self.call(
            "POST", f"/api/v1/patients/{patient['id']}/portal-credentials/{realm}", staff, request
        )
        assert status == 201, issued
        return patient, issued

    async def sign_in(self, realm: str, username: str, password: str) -> tuple[int, Any]:
        status, body, _ = await self.call(
            "POST",
            f"/api/v1/portal/{realm}/sessions",
            json={"username": username, "password": password},
        )
        return status, body

    async def patient_token(self, realm: str, username: str, password: str) -> str:
        status, body = await self.sign_in(realm, username, password)
        assert status == 201, body
        return str(body["token"])

    async def change_password(self, token: str, current: str, new: str) -> tuple[int, Any, str]:
        status, body, headers = await self.call(
            "POST",
            "/api/v1/portal/password",
            token,
            json={"current_password": current, "new_password": new},
        )
        return status, body, headers.get("X-Session-Token", "")


@pytest.fixture
def api(http: aiohttp.ClientSession, stack: RunningStack) -> Api:
    return Api(http, stack)


async def identity_sql(stack: RunningStack, query: str, *args: object) -> str:
    url = with_database(stack.stack.config.database_url or "", stack.stack.database("identity"))
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.execute(query, *args))
    finally:
        await conn.close()


# --- The credential lifecycle -------------------------------------------------------------------


async def test_credential_lifecycle(api: Api) -> None:
    # Staff sign in.
    status, session, _ = await api.call(
        "POST",
        "/api/v1/staff/sessions",
        json={"username": "admin", "password": api.stack.admin_password},
    )
    assert status == 201
    assert session["staff"]["username"] == "admin" and session["staff"]["role"] == "admin"
    assert session["token"] and session["expires_at"]
    staff = session["token"]

    # Bad input is 400 naming the fields: wrong JSON types (checked by the gateway) ...
    status, problem, _ = await api.call(
        "POST",
        "/api/v1/patients",
        staff,
        json={"first_name": 7, "last_name": "Doe", "date_of_birth": "1980-01-01"},
    )
    assert status == 400
    assert set(problem["errors"]) == {"first_name", "sex"}
    # ... and values identity rejects, under PatientFields' names.
    status, problem, _ = await api.call(
        "POST",
        "/api/v1/patients",
        staff,
        json={"first_name": "", "last_name": "Doe", "date_of_birth": "1980-13-45", "sex": "x"},
    )
    assert status == 400
    assert {"first_name", "date_of_birth", "sex"} <= set(problem["errors"])

    # Register, with a Location; not allowed the portal yet, no accounts.
    patient = await api.new_patient(staff)
    status, found, _ = await api.call("GET", f"/api/v1/patients/{patient['id']}", staff)
    assert status == 200
    assert found["first_name"] == patient["first_name"]
    assert found["allow_patient_portal"] is False
    assert found["portal"] == {"onsite": None, "offsite": None}
    credentials = f"/api/v1/patients/{patient['id']}/portal-credentials/onsite"
    status, problem, _ = await api.call("POST", credentials, staff)
    assert (status, problem["code"]) == (409, "PORTAL_NOT_ALLOWED")

    # Allow the portal; issue onsite credentials with a username of our choosing.
    status, found, _ = await api.call(
        "PATCH", f"/api/v1/patients/{patient['id']}", staff, json={"allow_patient_portal": True}
    )
    assert status == 200 and found["allow_patient_portal"] is True
    username = "lifecycle" + uuid.uuid4().hex[:8]
    status, issued, _ = await api.call("POST", credentials, staff, json={"username": username})
    assert status == 201, issued
    assert issued["username"] == username
    assert len(issued["password"]) >= 12
    assert issued["portal_url"].endswith("/portal/onsite/")
    assert issued["expires_at"]
    status, problem, _ = await api.call("POST", credentials, staff)
    assert (status, problem["code"]) == (409, "ACCOUNT_EXISTS")
    status, found, _ = await api.call("GET", f"/api/v1/patients/{patient['id']}", staff)
    assert found["portal"]["offsite"] is None
    assert found["portal"]["onsite"]["username"] == username
    assert found["portal"]["onsite"]["must_change_password"] is True
    assert found["portal"]["onsite"]["temporary_password_expires_at"]

    # The patient signs in; only the password change is open.
    status, grant = await api.sign_in("onsite", username, issued["password"])
    assert status == 201
    assert grant["must_change_password"] is True
    first = grant["token"]
    status, problem, _ = await api.call("GET", "/api/v1/portal/me", first)
    assert (status, problem["code"]) == (403, "PASSWORD_CHANGE_REQUIRED")
    assert "password" in problem["detail"]

    # The policy refuses a short password and the username; the gateway shows identity's words.
    for bad in ("Short-1", username):
        status, problem, token = await api.change_password(first, issued["password"], bad)
        assert status == 400, problem
        assert problem["errors"]["new_password"]
        assert token == ""
    status, problem, _ = await api.change_password(first, "not-the-password", NEW_PASSWORD)
    assert status == 400 and "current_password" in problem["errors"]

    # A good one: 204, the new token in X-Session-Token; the old token has ended.
    status, _, second = await api.change_password(first, issued["password"], NEW_PASSWORD)
    assert status == 204 and second and second != first
    status, me, _ = await api.call("GET", "/api/v1/portal/me", second)
    assert status == 200
    assert me["id"] == patient["id"] and me["first_name"] == patient["first_name"]
    assert me["account"] == {"realm": "onsite", "username": username}
    status, problem, _ = await api.call("GET", "/api/v1/portal/me", first)
    assert status == 401
    status, grant = await api.sign_in("onsite", username, issued["password"])
    assert (status, grant["detail"]) == (401, GENERIC)  # the issued password is gone

    # Staff reset: every session of the account ends; the temporary password signs in.
    status, reset, _ = await api.call("POST", f"{credentials}/reset", staff)
    assert status == 200, reset
    assert reset["username"] == username
    assert reset["temporary_password"] and reset["expires_at"]
    assert reset["portal_url"].endswith("/portal/onsite/")
    status, _, _ = await api.call("GET", "/api/v1/portal/me", second)
    assert status == 401
    status, grant = await api.sign_in("onsite", username, NEW_PASSWORD)
    assert status == 401
    status, grant = await api.sign_in("onsite", username, reset["temporary_password"])
    assert status == 201 and grant["must_change_password"] is True

    # Signing out ends the patient's and the staff member's sessions.
    status, _, _ = await api.call("DELETE", "/api/v1/portal/sessions/current", grant["token"])
    assert status == 204
    status, _, _ = await api.call("POST", "/api/v1/portal/password", grant["token"], json={})
    assert status == 401
    status, _, _ = await api.call("DELETE", "/api/v1/staff/sessions/current", staff)
    assert status == 204
    status, _, _ = await api.call("GET", f"/api/v1/patients/{patient['id']}", staff)
    assert status == 401


async def test_lockout_then_lock_expiry(api: Api) -> None:
    staff = await api.staff_token()
    patient, issued = await api.portal_patient(staff)
    username, password = issued["username"], issued["password"]

    for _ in range(5):
        status, body = await api.sign_in("onsite", username, password + "-wrong")
        assert (status, body["detail"]) == (401, GENERIC)
    # Locked: the correct password fails too, with exactly the same answer.
    status, locked = await api.sign_in("onsite", username, password)
    assert (status, locked["detail"]) == (401, GENERIC)
    assert locked == body
    status, found, _ = await api.call("GET", f"/api/v1/patients/{patient['id']}", staff)
    assert found["portal"]["onsite"]["locked_until"] is not None

    # The lock runs out (simulated): the correct password works again.
    result = await identity_sql(
        api.stack,
        "UPDATE portal_accounts SET locked_until = now() - interval '1 second' "
        "WHERE lower(username) = lower($1)",
        username,
    )
    assert result == "UPDATE 1"
    status, grant = await api.sign_in("onsite", username, password)
    assert status == 201, grant


async def test_expired_temporary_password_is_refused_with_409(api: Api) -> None:
    staff = await api.staff_token()
    patient, issued = await api.portal_patient(staff)
    await identity_sql(
        api.stack,
        "UPDATE portal_accounts SET temporary_expires_at = now() - interval '1 minute' "
        "WHERE lower(username) = lower($1)",
        issued["username"],
    )
    status, problem = await api.sign_in("onsite", issued["username"], issued["password"])
    assert status == 409
    assert problem["code"] == "TEMPORARY_PASSWORD_EXPIRED"
    assert problem["detail"]  # identity's words
    # A wrong password learns nothing about the expiry.
    status, problem = await api.sign_in("onsite", issued["username"], "wrong-" + issued["password"])
    assert (status, problem["detail"]) == (401, GENERIC)

    # A reset issues a fresh temporary password that works.
    status, reset, _ = await api.call(
        "POST", f"/api/v1/patients/{patient['id']}/portal-credentials/onsite/reset", staff
    )
    assert status == 200
    status, grant = await api.sign_in("onsite", issued["username"], reset["temporary_password"])
    assert status == 201 and grant["must_change_password"] is True


# --- Who can read what --------------------------------------------------------------------------


async def test_a_patient_token_reads_only_its_own_patient(api: Api) -> None:
    staff = await api.staff_token()
    a, a_issued = await api.portal_patient(staff)
    b, _ = await api.portal_patient(staff)
    first = await api.patient_token("onsite", a_issued["username"], a_issued["password"])
    _, _, token = await api.change_password(first, a_issued["password"], NEW_PASSWORD)
    assert token

    status, me, _ = await api.call("GET", "/api/v1/portal/me", token)
    assert status == 200 and me["id"] == a["id"]
    assert b["first_name"] not in str(me)
    for method, path in (
        ("GET", f"/api/v1/patients/{b['id']}"),
        ("GET", f"/api/v1/patients/{a['id']}"),
        ("GET", "/api/v1/patients?q=Tester"),
        ("PATCH", f"/api/v1/patients/{b['id']}"),
        ("POST", f"/api/v1/patients/{b['id']}/portal-credentials/offsite/reset"),
    ):
        status, problem, _ = await api.call(method, path, token, json={"first_name": "X"})
        assert status in (401, 403), (method, path, status)
        assert b["first_name"] not in str(problem)


async def test_staff_routes_need_a_staff_token(api: Api) -> None:
    staff = await api.staff_token()
    patient, issued = await api.portal_patient(staff)
    patient_token = await api.patient_token("onsite", issued["username"], issued["password"])
    routes = (
        ("GET", "/api/v1/patients?q=Ada", None),
        ("POST", "/api/v1/patients", {"first_name": "A"}),
        ("GET", f"/api/v1/patients/{patient['id']}", None),
        ("PATCH", f"/api/v1/patients/{patient['id']}", {"first_name": "A"}),
        ("POST", f"/api/v1/patients/{patient['id']}/portal-credentials/offsite", None),
        ("POST", f"/api/v1/patients/{patient['id']}/portal-credentials/onsite/reset", None),
        ("DELETE", "/api/v1/staff/sessions/current", None),
    )
    for method, path, body in routes:
        for token in (None, "not-a-token", patient_token):
            status, problem, headers = await api.call(method, path, token, json=body)
            assert status == 401, (method, path, token, status)
            assert headers["WWW-Authenticate"] == "Bearer"
            assert problem["status"] == 401
    # Nor does a staff token open the patient's own routes.
    for method, path in (
        ("GET", "/api/v1/portal/me"),
        ("DELETE", "/api/v1/portal/sessions/current"),
    ):
        status, _, _ = await api.call(method, path, staff)
        assert status == 401
    # The staff session cookie is not an API credential either.
    status, _, _ = await api.call(
        "GET", f"/api/v1/patients/{patient['id']}", headers={"Cookie": f"portal_staff={staff}"}
    )
    assert status == 401


async def test_onsite_credentials_never_open_offsite(api: Api) -> None:
    staff = await api.staff_token()
    _, issued = await api.portal_patient(staff, "onsite")
    status, problem = await api.sign_in("offsite", issued["username"], issued["password"])
    assert (status, problem["detail"]) == (401, GENERIC)
    status, _ = await api.sign_in("onsite", issued["username"], issued["password"])
    assert status == 201
    status, problem = await api.sign_in("elsewhere", issued["username"], issued["password"])
    assert status == 404


async def test_lists_of_a_patient_who_does_not_exist_are_404(api: Api) -> None:
    """Forms and scheduling answer an empty list for an id they never heard of; identity owns
    patients, so the gateway asks it: 404 problem, not 200 with no items."""
    staff = await api.staff_token()
    known = (await api.new_patient(staff))["id"]
    unknown = str(uuid.uuid4())
    for template in (
        "/api/v1/patients/{}/medications",
        "/api/v1/patients/{}/forms",
        "/api/v1/appointments?patient_id={}",
    ):
        status, body, _ = await api.call("GET", template.format(known), staff)
        assert status == 200 and body["items"] == [], (template, body)
        status, problem, _ = await api.call("GET", template.format(unknown), staff)
        assert status == 404, (template, status, problem)
        assert (problem["title"], problem["detail"]) == ("Not found", "No such patient."), problem
    # Without a patient, the appointments of everyone (in the period) as before.
    status, _, _ = await api.call("GET", "/api/v1/appointments?from=2001-01-01T00:00:00Z", staff)
    assert status == 200


# --- Bad requests are 4xx problems, never 500 ---------------------------------------------------


async def test_malformed_requests_are_400_problems(api: Api) -> None:
    staff = await api.staff_token()
    patient = await api.new_patient(staff)
    path = f"/api/v1/patients/{patient['id']}"
    json_header = {"Content-Type": "application/json"}
    for data in ("{not json", "[1, 2]", '"text"', "null", "1e999999", "[" * 100_000):
        status, problem, _ = await api.call(
            "POST", "/api/v1/patients", staff, data=data, headers=json_header
        )
        assert status == 400, (data[:20], problem)
        assert problem["title"] and "Traceback" not in str(problem)
    status, problem, _ = await api.call(
        "POST",
        "/api/v1/patients",
        staff,
        data="first_name=A",
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415

    # Unknown members and wrong types are named.
    status, problem, _ = await api.call(
        "PATCH", path, staff, json={"favourite_colour": "teal", "allow_sms": "yes"}
    )
    assert status == 400
    assert set(problem["errors"]) == {"favourite_colour", "allow_sms"}
    status, problem, _ = await api.call("PATCH", path, staff, json={})
    assert status == 400

    # PATCH changes only what it names.
    status, found, _ = await api.call(
        "PATCH", path, staff, json={"phone": "555-0100", "allow_sms": True}
    )
    assert status == 200
    assert found["phone"] == "555-0100" and found["allow_sms"] is True
    assert found["email"] == patient["email"] and found["first_name"] == patient["first_name"]

    # Unknown patients are 404; a duplicate is 409 until confirmed.
    for unknown in (str(uuid.uuid4()), "not-an-id"):
        status, problem, _ = await api.call("GET", f"/api/v1/patients/{unknown}", staff)
        assert status == 404
    same = {
        key: patient[key] for key in ("first_name", "last_name", "date_of_birth", "sex", "email")
    }
    status, problem, _ = await api.call("POST", "/api/v1/patients", staff, json=same)
    assert (status, problem["code"]) == (409, "DUPLICATE_PATIENT")
    status, twin, headers = await api.call(
        "POST", "/api/v1/patients", staff, json={**same, "confirm_duplicate": True}
    )
    assert status == 201 and twin["id"] != patient["id"]
    assert headers["Location"] == f"/api/v1/patients/{twin['id']}"

    # Search finds them; the limit is checked.
    status, found, _ = await api.call(
        "GET", f"/api/v1/patients?q={patient['last_name']}&limit=5", staff
    )
    assert status == 200
    assert {patient["id"], twin["id"]} <= {item["id"] for item in found["items"]}
    status, problem, _ = await api.call("GET", "/api/v1/patients?q=a&limit=lots", staff)
    assert status == 400 and "limit" in problem["errors"]

    # Credentials: a password the policy rejects is 400; a reset without an account is 409.
    await api.call("PATCH", path, staff, json={"allow_patient_portal": True})
    status, problem, _ = await api.call(
        "POST", f"{path}/portal-credentials/offsite", staff, json={"password": "short"}
    )
    assert status == 400 and "password" in problem["errors"]
    status, problem, _ = await api.call("POST", f"{path}/portal-credentials/offsite/reset", staff)
    assert (status, problem["code"]) == (409, "NO_ACCOUNT")

    # Sign-in bodies are checked too; a wrong type is never a 500.
    status, problem, _ = await api.call(
        "POST", "/api/v1/portal/onsite/sessions", json={"username": ["a"], "password": None}
    )
    assert status == 400 and set(problem["errors"]) == {"username", "password"}


async def test_sign_in_is_rate_limited_per_address(api: Api) -> None:
    # Staff and patient sign-ins share one budget per address (20 a minute by default).
    statuses = []
    for attempt in range(60):
        path = "/api/v1/staff/sessions" if attempt % 2 else "/api/v1/portal/offsite/sessions"
        status, problem, headers = await api.call(
            "POST", path, json={"username": "nobody", "password": "wrong-password"}
        )
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
            assert problem["status"] == 429
            break
    assert statuses[-1] == 429
    assert len(statuses) > 20 and set(statuses[:-1]) == {401}


# --- The OpenAPI document -----------------------------------------------------------------------


def router_operations() -> set[tuple[str, str]]:
    settings = GatewaySettings.from_env(TEST_GATEWAY_ENV)
    app = create_app(settings)
    operations = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/v1/") and route.method != "HEAD":
            operations.add((route.method.lower(), path))
    return operations


async def test_openapi_lists_exactly_the_api_routes(api: Api) -> None:
    status, document, _ = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    assert document["openapi"].startswith("3.1")
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }
    assert documented == router_operations()
    # 13 of identity, 18 of scheduling, 16 of forms, 18 of records, 1 of the audit log,
    # 9 of two-factor sign-in, 11 of staff users (their sessions, factor and the policy too)
    assert len(documented) == 87

    components = document["components"]
    assert components["securitySchemes"]["bearerAuth"] == {
        **components["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    assert {"type", "title", "status", "errors", "code"} <= set(
        components["schemas"]["Problem"]["properties"]
    )
    password = document["paths"]["/api/v1/portal/password"]["post"]
    assert "X-Session-Token" in password["responses"]["204"]["headers"]

    # Every $ref resolves, and every operation documents its answers.
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [r for value in node.values() for r in refs(value)]
        if isinstance(node, list):
            return [r for value in node for r in refs(value)]
        return []

    for target in refs(document):
        _, section, name = target.removeprefix("#/").split("/")[0:3]
        assert name in components[section], target
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in methods:
                assert operation["responses"], (method, path)
                if operation.get("security") != []:
                    assert "401" in operation["responses"], (method, path)


async def forms_sql(stack: RunningStack, query: str, *args: object) -> object:
    assert stack.stack.config.database_url is not None
    conn = await asyncpg.connect(
        with_database(stack.stack.config.database_url, stack.stack.database("forms"))
    )
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def test_withdrawing_portal_access_ends_sessions_and_sign_ins(api: Api) -> None:
    staff = await api.staff_token()
    patient, issued = await api.portal_patient(staff)
    token = await api.patient_token("onsite", issued["username"], issued["password"])
    changed_status, _, fresh = await api.change_password(token, issued["password"], NEW_PASSWORD)
    assert changed_status == 204
    assert (await api.call("GET", "/api/v1/portal/me", fresh))[0] == 200

    # forms learns of the grant through the event and marks the chart.
    async def chart_access() -> object:
        return await forms_sql(
            api.stack,
            "SELECT portal_access FROM charts WHERE patient_id = $1",
            uuid.UUID(patient["id"]),
        )

    assert await eventually(chart_access, lambda allowed: allowed is True) is True

    status, body, _ = await api.call(
        "PATCH", f"/api/v1/patients/{patient['id']}", staff, json={"allow_patient_portal": False}
    )
    assert status == 200 and body["allow_patient_portal"] is False
    assert (await api.call("GET", "/api/v1/portal/me", fresh))[0] == 401
    status, body = await api.sign_in("onsite", issued["username"], NEW_PASSWORD)
    assert (status, body["detail"]) == (401, GENERIC)
    assert await eventually(chart_access, lambda allowed: allowed is False) is False

    # Yes again: the same password works; the old session stays ended.
    status, _, _ = await api.call(
        "PATCH", f"/api/v1/patients/{patient['id']}", staff, json={"allow_patient_portal": True}
    )
    assert status == 200
    assert (await api.sign_in("onsite", issued["username"], NEW_PASSWORD))[0] == 201
    assert (await api.call("GET", "/api/v1/portal/me", fresh))[0] == 401
