"""Refills, records and profile updates in Chromium: a patient on a phone asks for a refill of a
medication staff keep in the chart; staff see it in the work queue (with the navigation's count
badge) and approve it; the patient reads "Approved". Staff write a letter from a template and
share it; the patient downloads it from Records (a PDF with their name). The patient proposes a
new phone number; staff accept it from the work queue and the chart's demographics show it.

Setup that is not under test (the patient, their credentials, offering the refill form) goes
through the API and gRPC; everything else is clicked. One stack, one test: every page shown is
checked with axe-core (WCAG 2.1 A/AA) by `Shots.take` or `accessible`. The stack is this module's
own (private_stack): the work queue's badge counts the whole clinic's waiting items.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
from playwright.async_api import Browser, Locator, Page, expect

from portal.forms.v1 import forms_pb2_grpc as pb_grpc
from tests.browser.conftest import ARTIFACTS, Shots, accessible
from tests.browser.test_seed_procedures import staff_signs_in
from tests.system.conftest import RunningStack
from tests.system.test_api import NEW_PASSWORD, Api
from tests.system.test_records_pages import chart_opened, offer_refills

pytestmark = pytest.mark.private_stack

PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
}
MEDICATION = "Lisinopril"
DOSE = "10 mg"
NEW_PHONE = "555 0142"
TEMPLATE = "Lab results are normal"


@pytest.fixture
async def forms(stack: RunningStack) -> AsyncIterator[pb_grpc.FormsServiceAsyncStub]:
    port = stack.stack.config.service_ports["forms"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.FormsServiceStub(channel)


async def portal_patient(stack: RunningStack) -> tuple[dict[str, Any], str]:
    """A patient with portal access and a password of their own (set over the API)."""
    async with aiohttp.ClientSession() as http:
        api = Api(http, stack)
        staff = await api.staff_token()
        patient, issued = await api.portal_patient(staff)
        first = await api.patient_token("onsite", issued["username"], issued["password"])
        status, _, _ = await api.change_password(first, issued["password"], NEW_PASSWORD)
        assert status == 204
    return patient, str(issued["username"])


async def badge(page: Page, count: int) -> None:
    """The Work queue tab's badge in the staff navigation shows `count`."""
    tab = page.get_by_role("navigation", name="Main").get_by_role("link", name=re.compile("Work"))
    await expect(tab.locator("#work-queue-count")).to_have_text(re.compile(rf"^{count}\s+waiting"))


def queue_row(page: Page, kind: str, name: str) -> Locator:
    return page.locator("#work-queue tbody tr").filter(has_text=kind).filter(has_text=name)


async def test_refill_letter_and_profile_update_between_a_phone_and_staff(
    stack: RunningStack,
    browser: Browser,
    page: Page,
    shots: Shots,
    forms: pb_grpc.FormsServiceAsyncStub,
) -> None:
    await offer_refills(forms)
    patient, username = await portal_patient(stack)
    first, last = patient["first_name"], patient["last_name"]
    full_name, listed_name = f"{first} {last}", f"{last}, {first}"
    await chart_opened(forms, str(patient["id"]))

    # Staff: find the patient, add a current medication in the chart.
    await staff_signs_in(page, stack)
    await page.get_by_label("Find a patient").fill(last)
    await page.get_by_role("button", name="Search").click()
    await accessible(page)
    await page.get_by_role("link", name=full_name).click()
    await expect(page.get_by_role("heading", name=full_name, level=1)).to_be_visible()
    medications = page.get_by_role("region", name="Medications")
    await medications.get_by_role("link", name="Add").click()
    await page.get_by_label("Name").fill(MEDICATION)
    await page.get_by_label("Dose").fill(DOSE)
    await accessible(page)
    await page.get_by_role("button", name="Add medication").click()
    await expect(page.get_by_text("Medication added.")).to_be_visible()
    await expect(medications).to_contain_text(f"{MEDICATION} {DOSE}")
    await shots.take(page, "staff-chart-medication")

    phone = await browser.new_context(**PHONE)
    phone.set_default_timeout(10_000)
    mobile = await phone.new_page()
    try:
        # The patient, on a phone: Refills, choose the medication from the list, send.
        await mobile.goto(f"{stack.url}/portal/onsite/login")
        await accessible(mobile)
        await mobile.get_by_label("Username").fill(username)
        await mobile.get_by_label("Password").fill(NEW_PASSWORD)
        await mobile.get_by_role("button", name="Sign in").click()
        await expect(mobile.get_by_role("heading", name=re.compile("^Welcome"))).to_be_visible()
        await accessible(mobile)
        portal_nav = mobile.get_by_role("navigation", name="Portal")
        await portal_nav.get_by_role("link", name="Refills").click()
        await mobile.get_by_label("One of your medications").select_option(
            label=f"{MEDICATION} {DOSE}"
        )
        await mobile.get_by_label("Quantity").fill("90 tablets")
        await mobile.get_by_label("Pharmacy").fill("Main Street Pharmacy")
        await shots.take(mobile, "phone-refill-form")
        await mobile.get_by_role("button", name="Send request").click()
        requests = mobile.locator("#refill-requests tbody tr")
        await expect(requests).to_have_count(1)
        await expect(requests.first).to_contain_text(f"{MEDICATION} {DOSE}")
        await expect(requests.first.locator(".refill-status")).to_have_text("Requested")
        await expect(requests.first.get_by_role("button", name="Withdraw")).to_be_visible()
        await shots.take(mobile, "phone-refill-requested")

        # Staff: the badge counts it; the work queue lists it; Decide, approve with a note.
        await page.get_by_role("link", name=re.compile("^Work queue")).click()
        await expect(page.get_by_role("heading", name="Work queue")).to_be_visible()
        await badge(page, 1)
        refill_row = queue_row(page, "Refill request", listed_name)
        await expect(refill_row).to_contain_text(f"{MEDICATION} {DOSE}")
        await expect(refill_row).to_contain_text("Requested")
        await shots.take(page, "staff-work-queue-refill")
        await refill_row.get_by_role("link", name=re.compile("^Decide")).click()
        decision = page.locator("#refill-requests tbody tr").filter(has_text=MEDICATION)
        await decision.get_by_label("Decision").select_option(label="Approve")
        await decision.get_by_label(re.compile("^Note for the patient")).fill(
            "Sent to Main Street Pharmacy."
        )
        await accessible(page)
        await decision.get_by_role("button", name="Save decision").click()
        await expect(page.get_by_text("Decision saved", exact=False)).to_be_visible()
        await expect(page.get_by_text("No refill requests with this status.")).to_be_visible()
        await accessible(page)
        await page.get_by_label("Status").select_option(label="Approved")
        await page.get_by_role("button", name="Show").click()
        decided = page.locator("#refill-requests tbody tr").filter(has_text=MEDICATION)
        await expect(decided).to_contain_text("Approved")
        await expect(decided).to_contain_text("Sent to Main Street Pharmacy.")
        await accessible(page)

        # The patient reads the answer; nothing to withdraw any more.
        await mobile.reload()
        await expect(requests.first.locator(".refill-status")).to_have_text("Approved")
        await expect(requests.first).to_contain_text("Sent to Main Street Pharmacy.")
        await expect(requests.first.get_by_role("button", name="Withdraw")).to_have_count(0)
        await shots.take(mobile, "phone-refill-approved")

        # Staff: from the request to the chart; a letter from a template, shared.
        await decided.get_by_role("link", name="Open chart").click()
        await (
            page.get_by_role("region", name="Documents")
            .get_by_role("link", name="Letter from template")
            .click()
        )
        await accessible(page)
        await page.get_by_label("Template").select_option(label=TEMPLATE)
        await page.get_by_role("button", name="Use this template").click()
        await expect(page.get_by_label("Letter")).to_contain_text(f"Dear {full_name},")
        await page.get_by_label("Title").fill("Your blood test results")
        await page.get_by_label(re.compile("^Share with the patient")).check()
        await shots.take(page, "staff-letter")
        await page.get_by_role("button", name="Save letter").click()
        await expect(page.get_by_text("Letter added to the chart.")).to_be_visible()
        documents = page.get_by_role("region", name="Documents")
        await expect(documents).to_contain_text("Your blood test results")
        await expect(documents).to_contain_text("Shared with patient")
        await accessible(page)

        # The patient downloads it from Records: a PDF that names them.
        await portal_nav.get_by_role("link", name="Records").click()
        row = mobile.locator("#records tbody tr").filter(has_text="Your blood test results")
        await expect(row).to_contain_text("Letter")
        await shots.take(mobile, "phone-records")
        async with mobile.expect_download() as info:
            await row.get_by_role("link", name="Download").click()
        download = await info.value
        assert download.suggested_filename.endswith(".pdf"), download.suggested_filename
        folder = ARTIFACTS / "records-letter"
        folder.mkdir(parents=True, exist_ok=True)
        saved = folder / "letter.pdf"
        await download.save_as(saved)
        assert saved.read_bytes().startswith(b"%PDF-")
        text = subprocess.run(
            ["pdftotext", str(saved), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert f"Dear {full_name}," in " ".join(text.split()), text

        # The patient proposes a new phone number on Profile. A mistyped e-mail first: the
        # page opens at the error summary (focused), not at its top far above it.
        await portal_nav.get_by_role("link", name="Profile").click()
        email = mobile.get_by_label("E-mail")
        given = await email.input_value()
        await email.fill("not-an-address")
        await mobile.get_by_role("button", name="Send change request").click()
        summary = mobile.locator(".error-summary")
        await expect(summary).to_contain_text("E-mail address is not valid.")
        await expect(summary).to_be_focused()
        await expect(summary).to_be_in_viewport()
        await accessible(mobile)
        await shots.take(mobile, "phone-profile-error")
        await email.fill(given)
        await mobile.get_by_label("Phone").fill(NEW_PHONE)
        await mobile.get_by_role("button", name="Send change request").click()
        await expect(mobile.get_by_text("pending review", exact=False).first).to_be_visible()
        await shots.take(mobile, "phone-profile-pending")
    finally:
        await phone.close()

    # Staff: the work queue filtered to profile updates; Decide, Accept; the chart shows it.
    await page.get_by_role("link", name=re.compile("^Work queue")).click()
    await badge(page, 1)  # the refill no longer waits; the profile update does
    await page.get_by_label("Kind").select_option(label="Profile update")
    await page.get_by_role("button", name="Show").click()
    update_row = queue_row(page, "Profile update", listed_name)
    await expect(page.locator("#work-queue tbody tr")).to_have_count(1)
    await expect(update_row).to_contain_text("Pending")
    await shots.take(page, "staff-work-queue-profile")
    await update_row.get_by_role("link", name=re.compile("^Decide")).click()
    decide = page.get_by_role("form", name=f"Decide on the change for {full_name}")
    card = page.locator("section.card").filter(has=decide)
    await expect(card.get_by_role("row", name=re.compile("^Phone"))).to_contain_text(NEW_PHONE)
    await shots.take(page, "staff-profile-update")
    await decide.get_by_label(re.compile("^Note to the patient")).fill("Updated, thank you.")
    await decide.get_by_role("button", name="Accept").click()
    await expect(page.get_by_text("Change accepted", exact=False).first).to_be_visible()
    await accessible(page)
    await page.get_by_role("navigation", name="Show").get_by_role("link", name="Accepted").click()
    accepted = page.get_by_role("region", name=full_name)
    await expect(accepted).to_contain_text("Updated, thank you.")
    await accessible(page)
    await accepted.get_by_role("link", name=full_name).click()
    await expect(page.get_by_role("heading", name=full_name, level=1)).to_be_visible()
    phone_value = page.locator("dt", has_text=re.compile("^Phone$")).locator(
        "xpath=following-sibling::dd[1]"
    )
    await expect(phone_value).to_have_text(NEW_PHONE)
    await shots.take(page, "staff-chart-new-phone")
