"""Forms down, everything else up: sign-in, search and credentials keep working.

The stack is this module's own (private_stack), so stopping forms here affects no other
test. What needs forms today is the staff chart's forms section and the
gateway's readiness report; no API operation calls forms yet, so the 503 problem naming a down
service is asserted here for identity's operations (test_readiness) and in process for forms
(tests/unit/test_outage_errors.py).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.integration.events import eventually
from tests.system.conftest import RunningStack

pytestmark = pytest.mark.private_stack

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FORMS_DOWN = "The forms service is unavailable right now"
FORMS_UP = "Chart opened in forms on"
NEW_PASSWORD = "Juniper-Kettle-Morning-42"


class Client:
    """A browser (cookies, CSRF tokens) that also calls the JSON API."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url

    async def api(
        self, method: str, path: str, token: str = "", body: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.url + path, json=body, headers=headers) as reply:
            return reply.status, await reply.json(content_type=None)

    async def page(self, path: str) -> tuple[int, str]:
        async with self.http.get(self.url + path, allow_redirects=False) as reply:
            return reply.status, await reply.text()

    async def submit(self, form_path: str, action: str, **fields: str) -> tuple[int, str, str]:
        """Open the form at `form_path`, post it with its CSRF token: status, body, Location."""
        status, html = await self.page(form_path)
        assert status == 200, html[:500]
        token = CSRF.search(html)
        assert token, "no csrf_token in the form"
        data = {"csrf_token": token[1], **fields}
        async with self.http.post(self.url + action, data=data, allow_redirects=False) as reply:
            return reply.status, await reply.text(), reply.headers.get("Location", "")


@pytest.fixture
async def client(stack: RunningStack) -> AsyncIterator[Client]:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        yield Client(http, stack.url)


async def readiness(client: Client) -> tuple[int, dict[str, Any]]:
    async with client.http.get(client.url + "/readyz") as reply:
        return reply.status, await reply.json()


async def staff_token(client: Client, stack: RunningStack) -> str:
    status, session = await client.api(
        "POST",
        "/api/v1/staff/sessions",
        body={"username": "admin", "password": stack.admin_password},
    )
    assert status == 201, session
    return str(session["token"])


async def test_staff_and_patients_keep_working_while_forms_is_down(
    stack: RunningStack, client: Client
) -> None:
    # Before the outage: a patient whose chart forms has opened (forms learns of it by event).
    staff = await staff_token(client, stack)
    last_name = "Outage" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:8])
    status, patient = await client.api(
        "POST",
        "/api/v1/patients",
        staff,
        {
            "first_name": "Rosa",
            "last_name": last_name,
            "date_of_birth": "1975-06-01",
            "sex": "female",
        },
    )
    assert status == 201, patient
    chart = f"/staff/patients/{patient['id']}"
    status, _, location = await client.submit(
        "/staff/login", "/staff/login", username="admin", password=stack.admin_password
    )
    assert (status, location) == (303, "/staff/patients")
    await eventually(lambda: client.page(chart), lambda page: FORMS_UP in page[1], timeout=30)

    assert stack.stack.stop_service("forms") == 0
    try:
        # Readiness stays 200 (the gateway can serve) and names forms as not serving.
        status, report = await eventually(
            lambda: readiness(client), lambda r: r[1]["status"] != "ready"
        )
        assert status == 200
        assert (report["status"], report["not_serving"]) == ("degraded", ["forms"])
        assert report["backends"]["forms"]["status"] != "SERVING"
        assert report["backends"]["identity"]["status"] == "SERVING"

        # Staff sign in, through a page and through the API.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
            status, _, location = await Client(other, stack.url).submit(
                "/staff/login", "/staff/login", username="admin", password=stack.admin_password
            )
            assert (status, location) == (303, "/staff/patients")
        staff = await staff_token(client, stack)

        # Patient search, through the API and the page.
        status, found = await client.api("GET", f"/api/v1/patients?q={last_name}", staff)
        assert status == 200, found
        assert [item["id"] for item in found["items"]] == [patient["id"]]
        status, html, _ = await client.submit("/staff/patients", "/staff/patients", query=last_name)
        assert status == 200 and chart in html

        # The chart renders; only its forms section says forms is down, and quickly.
        started = time.monotonic()
        status, html = await client.page(chart)
        assert status == 200
        assert time.monotonic() - started < 2
        assert last_name in html
        assert FORMS_DOWN in html and FORMS_UP not in html

        # Issue credentials; the patient signs in through the API and the portal's page.
        status, updated = await client.api(
            "PATCH", f"/api/v1/patients/{patient['id']}", staff, {"allow_patient_portal": True}
        )
        assert status == 200, updated
        status, issued = await client.api(
            "POST", f"/api/v1/patients/{patient['id']}/portal-credentials/onsite", staff
        )
        assert status == 201, issued
        status, grant = await client.api(
            "POST",
            "/api/v1/portal/onsite/sessions",
            body={"username": issued["username"], "password": issued["password"]},
        )
        assert status == 201 and grant["token"], grant
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
            status, _, location = await Client(other, stack.url).submit(
                "/portal/onsite/login",
                "/portal/onsite/login",
                username=issued["username"],
                password=issued["password"],
            )
            assert (status, location) == (303, "/portal/onsite/password")
    finally:
        stack.stack.start_service("forms")

    # Forms is back: readiness reports it serving, and the chart shows its section again.
    await eventually(lambda: readiness(client), lambda r: r[1]["status"] == "ready", timeout=30)
    status, html = await client.page(chart)
    assert status == 200 and FORMS_UP in html and FORMS_DOWN not in html
