"""Two-factor sign-in in Chromium: staff and a patient enrol by the settings page (the test
reads the manual key from the page and computes codes with it), sign out, and sign in with the
second step; staff remove a patient's factor from the chart; a role that requires two-factor
sign-in sends its staff to enrol first. Every page visited has no WCAG 2.1 A/AA violation
(axe-core)."""

from __future__ import annotations

import time
import uuid

from playwright.async_api import Page, expect

from services.identity import totp
from tests.browser.conftest import Shots, accessible
from tests.browser.test_appointments import NEW_PASSWORD, patient_signs_in
from tests.browser.test_seed_procedures import staff_signs_in
from tests.system.conftest import RunningStack
from tests.system.test_patient_portal import issue_credentials


def code(secret: str, shift: int = 0) -> str:
    return totp.code_at(secret, time.time() + shift * totp.STEP_SECONDS)


async def enrol(page: Page, shots: Shots, who: str) -> str:
    """On the settings page: set up, read the key, confirm; the recovery codes show once."""
    await expect(page.get_by_role("heading", name="Two-factor sign-in")).to_be_visible()
    await accessible(page)
    await page.get_by_role("button", name="Set up two-factor sign-in").click()
    qr = page.get_by_role("img", name="QR code of your two-factor key")
    await expect(qr).to_be_visible()
    assert (await qr.get_attribute("src") or "").startswith("data:image/svg+xml")
    secret = (await page.locator("#manual-key").inner_text()).strip()
    await accessible(page)
    await shots.take(page, f"{who}-enrol")
    await page.get_by_label("Code from the app").fill("000000" if code(secret) != "000000" else "1")
    await page.get_by_role("button", name="Turn on two-factor sign-in").click()
    await expect(page.get_by_text("That code is not correct", exact=False)).to_be_visible()
    await expect(page.get_by_label("Code from the app")).to_be_focused()  # below the QR code
    await accessible(page)
    await page.get_by_label("Code from the app").fill(code(secret, -1))
    await page.get_by_role("button", name="Turn on two-factor sign-in").click()
    await expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    assert await page.locator("#recovery-codes li").count() == 10
    await accessible(page)
    await shots.take(page, f"{who}-recovery-codes")
    return secret


async def second_step(page: Page, shots: Shots, who: str, secret: str) -> None:
    await expect(page.get_by_role("heading", name="Two-factor sign in")).to_be_visible()
    await accessible(page)
    await shots.take(page, f"{who}-second-step")
    await page.get_by_label("Code").fill(code(secret))
    await page.get_by_role("button", name="Sign in").click()


async def test_staff_enrol_and_sign_in_with_a_code(
    stack: RunningStack, page: Page, shots: Shots
) -> None:
    await staff_signs_in(page, stack)
    await page.goto(f"{stack.url}/staff/account/two-factor")
    secret = await enrol(page, shots, "staff")
    await page.goto(f"{stack.url}/staff/account/two-factor")
    await expect(page.locator("#mfa-status")).to_contain_text("on")

    await page.get_by_role("button", name="Sign out").first.click()
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill(stack.admin_password)
    await page.get_by_role("button", name="Sign in").click()
    await second_step(page, shots, "staff", secret)
    await expect(page.get_by_role("heading", name="Patient Search/Add")).to_be_visible()

    # Turned off with a fresh code, so the module's other tests sign in with the password.
    await page.goto(f"{stack.url}/staff/account/two-factor")
    await page.get_by_label("Code from the app or a recovery code").fill(code(secret, 1))
    await page.get_by_role("button", name="Turn off two-factor sign-in").click()
    await expect(page.get_by_text("Two-factor sign-in is off.", exact=True)).to_be_visible()
    await accessible(page)


async def test_patient_enrol_and_sign_in_with_a_code(
    stack: RunningStack, page: Page, shots: Shots
) -> None:
    record, issued = await issue_credentials(stack)
    base = f"{stack.url}/portal/onsite/"
    await patient_signs_in(page, base, issued["username"], issued["password"])
    await page.goto(base + "two-factor")
    secret = await enrol(page, shots, "patient")

    await page.get_by_role("button", name="Sign out").first.click()
    await page.goto(base + "login")
    await page.get_by_label("Username").fill(issued["username"])
    await page.get_by_label("Password").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await second_step(page, shots, "patient", secret)
    await expect(page.get_by_role("heading", name="Welcome", exact=False)).to_be_visible()
    await accessible(page)

    # The patient lost the phone: staff remove the factor from the chart, after confirming.
    await staff_signs_in(page, stack)
    await page.goto(f"{stack.url}/staff/patients/{record['id']}")
    await expect(page.get_by_text("Two-factor sign-in on")).to_be_visible()
    await page.locator("#mfa-reset-onsite").click()
    await expect(
        page.get_by_role("heading", name="Reset Onsite Two-Factor Sign-in")
    ).to_be_visible()
    await accessible(page)
    await shots.take(page, "staff-patient-mfa-reset")
    await page.get_by_role("button", name="Remove two-factor sign-in").click()
    await expect(page.get_by_text("Two-factor sign-in removed", exact=False)).to_be_visible()
    await expect(page.locator("#mfa-reset-onsite")).to_have_count(0)
    await accessible(page)


async def test_a_role_that_requires_two_factor_sends_its_staff_to_enrol(
    stack: RunningStack, page: Page, shots: Shots
) -> None:
    await staff_signs_in(page, stack)
    await page.goto(f"{stack.url}/staff/admin/staff")
    username = "nurse" + uuid.uuid4().hex[:6]
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Display name").fill("Nurse Joy")
    await page.locator("#f-role").select_option("clinician")
    await page.get_by_label("Password (optional)").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Add staff user").click()
    await expect(page.get_by_text("Staff user added.")).to_be_visible()
    await page.locator("#mfa-required-clinician").check()
    await page.get_by_role("button", name="Save two-factor setting").click()
    await expect(page.get_by_text("Two-factor sign-in setting saved.")).to_be_visible()
    await expect(page.locator("#mfa-required-clinician")).to_be_checked()
    await accessible(page)
    await shots.take(page, "staff-mfa-policy")
    try:
        await page.get_by_role("button", name="Sign out").first.click()
        await page.get_by_label("Username").fill(username)
        await page.get_by_label("Password").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#mfa-required")).to_be_visible()
        await shots.take(page, "staff-mfa-required")
        await page.goto(f"{stack.url}/staff/patients")  # nothing else opens yet
        await expect(page.locator("#mfa-required")).to_be_visible()
        await enrol(page, shots, "staff-required")
        await page.get_by_role("link", name="Continue to the staff portal").click()
        await expect(page.get_by_role("heading", name="Patient Search/Add")).to_be_visible()
        # Their own page says why it stays on instead of offering to turn it off.
        await page.goto(f"{stack.url}/staff/account/two-factor")
        await expect(page.locator("#mfa-removal-refused")).to_contain_text("required for your role")
        turn_off = page.get_by_role("button", name="Turn off two-factor sign-in")
        await expect(turn_off).to_have_count(0)
        await shots.take(page, "staff-mfa-required-stays-on")
    finally:
        await page.get_by_role("button", name="Sign out").first.click()
        await staff_signs_in(page, stack)
        await page.goto(f"{stack.url}/staff/admin/staff")
        await page.locator("#mfa-required-clinician").uncheck()
        await page.get_by_role("button", name="Save two-factor setting").click()
        await expect(page.get_by_text("Two-factor sign-in setting saved.")).to_be_visible()
