"""Front desk in Chromium: the forms set-up pages without the controls it cannot use (a short
note says who may), no axe-core violation on them nor on the 403 page, and the appointment
types page with its note in the page and a plain browser tab title."""

from __future__ import annotations

import re
import uuid

import aiohttp
from playwright.async_api import Page, expect

from tests.browser.conftest import Shots, accessible
from tests.browser.test_seed_procedures import staff_signs_in
from tests.system.conftest import RunningStack
from tests.system.test_api import Api
from tests.system.test_forms_roles import appointment_type
from tests.system.test_staff_lifecycle import CHOSEN, new_staff_member


async def front_desk_signs_in(page: Page, stack: RunningStack) -> None:
    username = "desk" + uuid.uuid4().hex[:8]
    async with aiohttp.ClientSession() as http:
        api = Api(http, stack)
        admin = await api.staff_token()
        await new_staff_member(api, admin, username, "front_desk")
        await appointment_type(api, admin)  # the pages show one at least
    await staff_signs_in(page, stack, username, CHOSEN)


async def test_front_desk_reads_the_forms_set_up_and_is_told_who_may_change_it(
    page: Page, stack: RunningStack, shots: Shots
) -> None:
    await front_desk_signs_in(page, stack)
    await page.goto(f"{stack.url}/staff/practice/portal-forms")
    await expect(
        page.get_by_text("Only admin and clinician staff change the portal's forms.")
    ).to_be_visible()
    await expect(page.get_by_role("main").get_by_role("button")).to_have_count(
        0
    )  # no Up/Down, no Update
    await expect(page.get_by_role("checkbox")).to_have_count(0)
    await shots.take(page, "portal-forms-read-only")

    await page.goto(f"{stack.url}/staff/practice/forms")
    await expect(
        page.get_by_text("Only admin and clinician staff create, edit or import forms.")
    ).to_be_visible()
    await expect(page.get_by_role("link", name="Create a form")).to_have_count(0)
    await expect(page.get_by_role("button", name="Import")).to_have_count(0)
    await expect(page.get_by_role("link", name="Edit", exact=False)).to_have_count(0)
    await shots.take(page, "form-library-read-only")
    await page.locator("tbody th a").first.click()
    await expect(page.get_by_text("Only admin and clinician staff edit forms.")).to_be_visible()
    await expect(page.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    await shots.take(page, "form-read-only")

    await page.goto(f"{stack.url}/staff/practice/visit-forms")
    await expect(
        page.get_by_text("Only admin and clinician staff change the visit forms.")
    ).to_be_visible()
    await expect(page.get_by_role("checkbox")).to_have_count(0)
    await expect(page.get_by_role("heading", name="Role visit").first).to_be_visible()
    await shots.take(page, "visit-forms-read-only")

    await page.goto(f"{stack.url}/staff/practice/forms/new")  # an address typed in
    await expect(page.get_by_role("heading", name="Not allowed", level=1)).to_be_visible()
    await expect(page.get_by_text("Only admin and clinician staff can do this.")).to_be_visible()
    await expect(page).to_have_title(re.compile(r"^Not allowed · [^<]+$"))
    await shots.take(page, "not-allowed")


async def test_the_appointment_types_note_is_in_the_page_not_the_tab_title(
    page: Page, stack: RunningStack
) -> None:
    await front_desk_signs_in(page, stack)
    await page.goto(f"{stack.url}/staff/practice/appointment-types")
    await expect(page).to_have_title(re.compile(r"^Appointment types · [^<]+$"))
    await expect(
        page.get_by_text("Only admin staff add or edit appointment types.")
    ).to_be_visible()
    await accessible(page)
