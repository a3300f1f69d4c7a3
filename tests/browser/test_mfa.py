"""Two-factor sign-in in Chromium: staff and a patient enrol by the settings page (the test
reads the manual key from the page and computes codes with it), sign out, and sign in with the
second step. Every page visited has no WCAG 2.1 A/AA violation (axe-core)."""

from __future__ import annotations

import time

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
    _, issued = await issue_credentials(stack)
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
