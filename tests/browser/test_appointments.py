"""The seed's "Appointment Forms" in Chromium on a phone: select an appointment type, click Find
Available, select the provider and time, click Confirm Appointment; staff see it in the
calendar; the patient cancels. Every page visited has no WCAG 2.1 A/AA violation (axe-core).

Seed: ../shared/seed/patient-portal.txt.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import Shots, accessible
from tests.browser.test_seed_procedures import NEW_PASSWORD_LABEL, staff_signs_in
from tests.system.conftest import RunningStack
from tests.system.test_patient_portal import issue_credentials

PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
}
NEW_PASSWORD = "Lantern-orchard-47"


async def set_up_clinic(page: Page, shots: Shots) -> tuple[str, str]:
    """Staff add a provider with hours every day and a type patients may book online."""
    provider = f"Dr. Ada Byron {uuid.uuid4().hex[:4]}"
    type_name = f"Consultation {uuid.uuid4().hex[:4]}"
    await page.get_by_role("link", name="Practice", exact=True).click()
    await accessible(page)
    await page.get_by_role("link", name="Providers", exact=True).first.click()
    await page.get_by_label("Display name").fill(provider)
    await page.get_by_role("button", name="Add provider").click()
    await expect(page.get_by_role("heading", name=provider, level=1)).to_be_visible()
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"):
        await page.get_by_label(day).fill("00:00-24:00")
    await page.get_by_role("button", name="Save weekly hours").click()
    await expect(page.get_by_text("Weekly hours saved.")).to_be_visible()
    await accessible(page)
    await shots.take(page, "staff-provider")

    await page.get_by_role("link", name="Appointment types", exact=True).first.click()
    await page.get_by_role("link", name="Add appointment type").click()
    await page.get_by_label("Name").fill(type_name)
    await page.get_by_label("Duration (minutes)").fill("30")
    await page.get_by_label("Minimum notice (minutes)").fill("0")
    await page.get_by_label("Cancellation notice (minutes)").fill("0")
    await page.get_by_label(provider).check()
    await accessible(page)
    await page.get_by_role("button", name="Save appointment type").click()
    await expect(page.get_by_role("link", name=type_name)).to_be_visible()
    await accessible(page)
    return provider, type_name


async def patient_signs_in(page: Page, address: str, username: str, password: str) -> None:
    await page.goto(address)
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_label("Current password").fill(password)
    await page.get_by_label(NEW_PASSWORD_LABEL).fill(NEW_PASSWORD)
    await page.get_by_label("Confirm new password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Change password").click()
    await expect(page.get_by_role("heading", name="Welcome", exact=False)).to_be_visible()


async def test_patient_books_on_a_phone_staff_see_it_patient_cancels(
    stack: RunningStack, browser: Browser, page: Page, shots: Shots
) -> None:
    await staff_signs_in(page, stack)
    provider, type_name = await set_up_clinic(page, shots)
    _, issued = await issue_credentials(stack)

    phone = await browser.new_context(**PHONE)
    phone.set_default_timeout(10_000)
    patient = await phone.new_page()
    try:
        await patient_signs_in(
            patient, f"{stack.url}/portal/onsite/", issued["username"], issued["password"]
        )
        await patient.get_by_role("link", name="Appointments").click()
        await expect(patient.get_by_role("heading", name="Appointments", level=1)).to_be_visible()
        await accessible(patient)
        await shots.take(patient, "phone-appointments")

        # Select an appointment type from the drop-down list, then click Find Available.
        await patient.get_by_label("Appointment type").select_option(label=type_name)
        await patient.get_by_label("Provider (optional)").select_option(label=provider)
        await patient.get_by_role("button", name="Find Available").click()
        await expect(patient.get_by_role("heading", name="Available times")).to_be_visible()
        await accessible(patient)
        await shots.take(patient, "phone-available-times")

        # Select the provider and time, review, then click Confirm Appointment.
        first = patient.get_by_role("radio").first
        await first.check()
        chosen = (await patient.locator("label[for='f-slot'] .slot-time").inner_text()).strip()
        await patient.get_by_role("button", name="Continue").click()
        await expect(patient.get_by_role("heading", name="Review your appointment")).to_be_visible()
        await accessible(patient)
        await shots.take(patient, "phone-review")
        await patient.get_by_role("button", name="Confirm Appointment").click()
        await expect(patient.get_by_text("Your appointment is booked.")).to_be_visible()
        await expect(patient.get_by_text(chosen, exact=False).first).to_be_visible()
        await accessible(patient)
        await shots.take(patient, "phone-booked")

        until = patient.get_by_text("You can cancel or change this appointment online until")
        await expect(until).to_be_visible()
        appointment_url = patient.url.split("?")[0]
        day = await patient.locator("time").first.get_attribute("datetime")
        assert day

        # Rescheduling searches too: the type stays, a provider and an earliest date are chosen.
        await patient.get_by_role("link", name="Reschedule").click()
        await expect(patient.get_by_role("heading", name="Choose a new time")).to_be_visible()
        await expect(patient.get_by_text(f"Appointment type: {type_name}")).to_be_visible()
        await patient.get_by_label("Provider (optional)").select_option(label=provider)
        later = (date.fromisoformat(day[:10]) + timedelta(days=3)).isoformat()
        await patient.get_by_label("Earliest date (optional)").fill(later)
        await patient.get_by_role("button", name="Find Available").click()
        await expect(patient).to_have_url(re.compile(rf"[?&]from={later}"))
        await expect(patient.get_by_label("Earliest date (optional)")).to_have_value(later)
        # The first time offered is from that date on (a day's margin for any clinic zone).
        first_value = await patient.get_by_role("radio").first.get_attribute("value")
        earliest = datetime.fromisoformat(later).replace(tzinfo=UTC) - timedelta(days=1)
        assert first_value and int(first_value.split("|")[1]) >= earliest.timestamp(), first_value
        await expect(patient.get_by_role("radio").first).to_be_visible()
        await accessible(patient)
        await shots.take(patient, "phone-reschedule-search")
        await patient.get_by_role("link", name="Keep the current time").click()

        # Staff see it in the calendar (all providers, the appointment's day).
        await page.goto(f"{stack.url}/staff/practice/calendar?date={day[:10]}")
        column = page.locator(".calendar-column", has_text=provider)
        await expect(column.get_by_text(type_name)).to_be_visible()
        await expect(column.get_by_role("link", name=chosen)).to_be_visible()
        await accessible(page)
        await shots.take(page, "staff-calendar")
        await column.get_by_role("link", name=chosen).click()
        await expect(page.get_by_role("button", name="Mark arrived")).to_be_visible()
        await accessible(page)

        # The patient cancels (no reason needed); it moves to the past and cancelled list.
        # Cancelling is a step of its own: the appointment again, a reason, then the button.
        await patient.goto(appointment_url)
        await patient.get_by_role("link", name="Cancel appointment").click()
        await expect(
            patient.get_by_role("heading", name="Cancel your appointment?")
        ).to_be_visible()
        await accessible(patient)
        await shots.take(patient, "phone-cancel")
        await patient.get_by_label("Reason (optional)").fill("Feeling better")
        await patient.get_by_role("button", name="Cancel appointment").click()
        await expect(patient.get_by_text("Your appointment has been cancelled.")).to_be_visible()
        past = patient.locator(".card", has_text="Past and cancelled appointments")
        await expect(past.get_by_text("Cancelled", exact=True)).to_be_visible()
        await accessible(patient)
        await shots.take(patient, "phone-cancelled")
    finally:
        await phone.close()
