"""The staff work queue through the real stack: a patient asks for a refill, proposes a profile
update and books an appointment in the portal; staff see all three on the work queue page with
the navigation's count badge, filter by kind, approve the refill over the API, and the patient
reads "approved" over the API.

The stack is this module's own (private_stack): the queue and its badge count are the whole
clinic's, so the test knows every item on them only on a clinic no other module has used."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import grpc
import pytest

from portal.forms.v1 import forms_pb2_grpc as pb_grpc
from tests.system.conftest import RunningStack
from tests.system.test_api import NEW_PASSWORD, Api
from tests.system.test_patient_portal import client, issue_credentials
from tests.system.test_records_pages import chart_opened, offer_refills
from tests.system.test_scheduling_pages import SLOT, set_up_clinic
from tests.system.test_staff_pages import Browser, Page

ROW = re.compile(r'<tr data-kind="([a-z_]+)" data-id="([0-9a-f-]{36})">')
BADGE = re.compile(r'id="work-queue-count">(\d+)<')

pytestmark = pytest.mark.private_stack


@pytest.fixture
async def forms(stack: RunningStack) -> AsyncIterator[pb_grpc.FormsServiceAsyncStub]:
    port = stack.stack.config.service_ports["forms"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.FormsServiceStub(channel)


def rows(page: Page) -> set[tuple[str, str]]:
    return set(ROW.findall(page.text))


def badge(page: Page) -> int:
    found = BADGE.search(page.text)
    return int(found[1]) if found else 0


async def book(patient: Browser, type_id: str, provider_id: str) -> str:
    """Find Available, the first time, Confirm Appointment: the appointment's id."""
    page = await patient.get(
        f"/portal/onsite/appointments/find?type={type_id}&provider={provider_id}"
    )
    chosen = html.unescape(SLOT.findall(page.text)[0])
    page = await patient.get(f"/portal/onsite/appointments/review?type={type_id}&slot={chosen}")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert key, page.text[:2000]
    page = await patient.post(
        "/portal/onsite/appointments",
        {"type": type_id, "slot": chosen, "idempotency_key": key[1]},
        follow=False,
    )
    assert page.status == 303, page.text[:2000]
    return page.url.split("?")[0].rsplit("/", 1)[-1]


async def test_portal_activity_reaches_the_work_queue_and_the_answer_the_patient(
    stack: RunningStack, forms: pb_grpc.FormsServiceAsyncStub
) -> None:
    await offer_refills(forms)
    async with client() as staff_http, client() as patient_http, client() as api_http:
        staff = Browser(staff_http, stack.url)
        assert (await staff.sign_in("admin", stack.admin_password)).status == 200
        provider_id, type_id, _ = await set_up_clinic(staff)
        api = Api(api_http, stack)
        staff_token = await api.staff_token()

        # The patient: an API token (password changed there) and a portal browser session.
        patient, issued = await issue_credentials(stack)
        patient_id = str(patient["id"])
        first = await api.patient_token("onsite", issued["username"], issued["password"])
        status, _, token = await api.change_password(first, issued["password"], NEW_PASSWORD)
        assert status == 204
        browser = Browser(patient_http, stack.url)
        await browser.get("/portal/onsite/login")
        home = await browser.post(
            "/portal/onsite/login", {"username": issued["username"], "password": NEW_PASSWORD}
        )
        assert "/portal/onsite/home" in home.url, home.url
        await chart_opened(forms, patient_id)

        # Three things done in the portal.
        status, refill, _ = await api.call(
            "POST", "/api/v1/portal/refill-requests", token, {"medication": "Atorvastatin"}
        )
        assert status == 201, refill
        status, update, _ = await api.call(
            "POST", "/api/v1/portal/profile-updates", token, {"email": "new@example.org"}
        )
        assert status == 201, update
        appointment_id = await book(browser, type_id, provider_id)

        # Staff: all three on the page, the badge counts them, each row links onwards.
        page = await staff.get("/staff/work-queue")
        assert page.status == 200, page.text[:2000]
        expected = {
            ("refill_request", refill["id"]),
            ("profile_update", update["id"]),
            ("portal_booking", appointment_id),
        }
        assert rows(page) == expected, page.text[:4000]
        assert badge(page) == 3
        assert f'href="/staff/appointments/{appointment_id}"' in page.text
        # A decision link opens the item itself: its row on the kind's page.
        assert (
            f'href="/staff/refills?status=requested&amp;patient_id={patient_id}#refill-{refill["id"]}"'
            in page.text
        ), page.text[:4000]
        assert f'href="/staff/profile-updates#update-{update["id"]}"' in page.text
        assert f'href="/staff/patients/{patient_id}"' in page.text
        assert patient["last_name"] in page.text  # the name, from identity

        # Filters by kind (and status).
        page = await staff.get("/staff/work-queue?kind=portal_booking")
        assert rows(page) == {("portal_booking", appointment_id)}
        page = await staff.get("/staff/work-queue?kind=refill_request&status=approved")
        assert rows(page) == set()

        # The API's queue says the same.
        status, body, _ = await api.call("GET", "/api/v1/work-queue", staff_token)
        assert {(i["kind"], i["id"]) for i in body["items"]} == expected

        # Staff approve the refill over the API; the patient reads the answer there.
        status, body, _ = await api.call(
            "POST",
            f"/api/v1/refill-requests/{refill['id']}/decision",
            staff_token,
            {"decision": "approved", "note": "Sent to your pharmacy."},
        )
        assert status == 200 and body["status"] == "approved", body
        status, body, _ = await api.call("GET", "/api/v1/portal/refill-requests", token)
        assert body["items"][0]["status"] == "approved"
        assert body["items"][0]["decision_note"] == "Sent to your pharmacy."

        # The queue no longer waits for it; the badge on other staff pages follows.
        page = await staff.get("/staff/work-queue")
        assert ("refill_request", refill["id"]) not in rows(page) and badge(page) == 2
        assert badge(await staff.get("/staff/patients")) == 2
        page = await staff.get("/staff/work-queue?kind=refill_request&status=approved")
        assert rows(page) == {("refill_request", refill["id"])}
