"""The seed's three staff procedures, clicked through step by step in Chromium, then the patient.

Seed: ../shared/seed/patient-portal.txt — "Grant a Patient Permissions to Access the Patient
Portal", "Create Patient Login Credentials", "Reset a Patient Password".
"""

from __future__ import annotations

import re

from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import Shots
from tests.system.conftest import RunningStack

NEW_PASSWORD = "Lantern-orchard-47"
NEW_PASSWORD_LABEL = re.compile(r"^New password")
NEWER_PASSWORD = "Copper-meadow-93"


async def staff_signs_in(
    page: Page, stack: RunningStack, username: str = "admin", password: str = ""
) -> None:
    """Signs in as `username` (the admin, with the stack's password, unless named)."""
    await page.goto(f"{stack.url}/staff/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password or stack.admin_password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Patient Search/Add")).to_be_visible()


async def add_patient(page: Page) -> None:
    await page.get_by_role("link", name="Add patient").first.click()
    await page.get_by_label("First name").fill("Ada")
    await page.get_by_label("Last name").fill("Lovelace")
    await page.get_by_label("Date of birth").fill("1985-12-10")
    await page.get_by_label("Sex").select_option("female")
    await page.get_by_role("button", name="Add patient").click()
    await expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()


async def open_chart(page: Page, shots: Shots, label: str) -> None:
    """Steps 1-3 of every procedure: Patients tab, Patient Search/Add, select the patient."""
    await page.get_by_role("link", name="Patients", exact=True).click()  # 1
    await page.get_by_role("link", name="Patient Search/Add").first.click()  # 2
    await page.get_by_label("Find a patient").fill("Lovelase")  # a typo still finds her
    await page.get_by_role("button", name="Search").click()
    await shots.take(page, f"{label}-search-results")
    await page.get_by_role("link", name="Ada Lovelace").click()  # 3
    await expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()


async def choose_from_patient_info(page: Page, item: str) -> None:
    """Step 4: hover over Patient Info and select an item."""
    await page.get_by_role("button", name="Patient Info").hover()
    menu_item = page.get_by_role("menuitem", name=item)
    await expect(menu_item).to_be_visible()
    await menu_item.click()


async def letter_credentials(page: Page) -> tuple[str, str, str]:
    values = page.locator(".credentials dd")
    await expect(values).to_have_count(3)
    address, username, password = (v.strip() for v in await values.all_inner_texts())
    return address, username, password


async def patient_signs_in_and_must_choose_a_password(
    page: Page, address: str, username: str, password: str, new_password: str
) -> None:
    await page.goto(address)
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    # Only the change-password page is reachable now.
    await expect(page.get_by_label(NEW_PASSWORD_LABEL)).to_be_visible()
    await page.goto(address + "home")
    await expect(page.get_by_label(NEW_PASSWORD_LABEL)).to_be_visible()
    await page.get_by_label("Current password").fill(password)
    await page.get_by_label(NEW_PASSWORD_LABEL).fill(new_password)
    await page.get_by_label("Confirm new password").fill(new_password)
    await page.get_by_role("button", name="Change password").click()
    await expect(page.get_by_role("heading", name="Welcome, Ada")).to_be_visible()


async def test_seed_procedures_then_the_patient_signs_in(
    stack: RunningStack, page: Page, shots: Shots
) -> None:
    await staff_signs_in(page, stack)
    await add_patient(page)
    await shots.take(page, "patient-added")

    # Grant a Patient Permissions to Access the Patient Portal.
    await open_chart(page, shots, "grant")
    await page.get_by_role("link", name="Edit").click()  # 4: Edit under Demographics
    await page.get_by_role("link", name="Choices").click()  # 5: the Choices tab
    await page.get_by_role("radio", name="Yes").check()  # 6: Allow Patient Portal = Yes
    await shots.take(page, "grant-choices")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator(".card", has_text="Allow Patient Portal")).to_contain_text("Yes")
    await shots.take(page, "grant-done")

    # Create Patient Login Credentials.
    await open_chart(page, shots, "create")
    await choose_from_patient_info(page, "Create Onsite Portal Credentials")  # 4
    await expect(page.get_by_role("heading", name="Generate Username and Password")).to_be_visible()
    first_password = (await page.locator(".credential-value").first.inner_text()).strip()
    await page.get_by_role("button", name="Change").click()  # 5: optionally change the password
    changed_password = (await page.locator(".credential-value").first.inner_text()).strip()
    assert changed_password != first_password
    await shots.take(page, "create-generated")
    await page.get_by_role("button", name="Save").click()  # 6: the printable form
    await expect(page.locator(".credentials dt").first).to_have_text("Patient Portal Web Address")
    address, username, password = await letter_credentials(page)
    assert address.endswith("/portal/onsite/") and password == changed_password
    await shots.take(page, "create-letter")
    await page.emulate_media(media="print")
    await shots.take(page, "create-letter-print")
    await page.emulate_media(media="screen")

    # The patient signs in with the letter and is made to choose a new password.
    patient = await page.context.browser.new_context()  # type: ignore[union-attr]
    patient_page = await patient.new_page()
    await patient_signs_in_and_must_choose_a_password(
        patient_page, address, username, password, NEW_PASSWORD
    )
    await shots.take(patient_page, "patient-home")

    # Reset a Patient Password.
    await open_chart(page, shots, "reset")
    await choose_from_patient_info(page, "Reset Onsite Portal Credentials")  # 4
    await page.get_by_role("button", name="Reset and print a temporary password").click()
    _, reset_username, temporary = await letter_credentials(page)
    assert reset_username == username and temporary not in (password, NEW_PASSWORD)
    await shots.take(page, "reset-letter")

    # The reset ended the patient's session; the temporary password leads to a new choice.
    await patient_page.reload()
    await expect(patient_page.get_by_role("heading", name="Welcome, Ada")).not_to_be_visible()
    await patient_signs_in_and_must_choose_a_password(
        patient_page, address, username, temporary, NEWER_PASSWORD
    )
    await shots.take(patient_page, "patient-after-reset")
    await patient.close()


async def test_patient_info_menu_works_from_the_keyboard_and_on_a_phone(
    stack: RunningStack, browser: Browser, shots: Shots
) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    try:
        await staff_signs_in(page, stack)
        await page.get_by_label("Find a patient").fill("Ada Lovelace")
        await page.get_by_role("button", name="Search").click()
        await page.get_by_role("link", name="Ada Lovelace").first.click()
        await shots.take(page, "phone-chart")

        button = page.get_by_role("button", name="Patient Info")
        await button.focus()
        await page.keyboard.press("Enter")
        await expect(button).to_have_attribute("aria-expanded", "true")
        await page.keyboard.press("ArrowDown")
        focused = page.locator("[role=menuitem]:focus")
        await expect(focused).to_have_count(1)
        await shots.take(page, "phone-menu-open")
        await page.keyboard.press("Escape")
        await expect(button).to_have_attribute("aria-expanded", "false")
        await expect(button).to_be_focused()
    finally:
        await context.close()
