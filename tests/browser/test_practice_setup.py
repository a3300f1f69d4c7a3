"""Deactivating a provider in Chromium: a confirmation page first (no JavaScript involved),
the provider still in the calendar's drop-down marked "(inactive)", then Reactivate. Every page
shown has no WCAG 2.1 A/AA violation (axe-core)."""

from __future__ import annotations

import uuid

from playwright.async_api import Page, expect

from tests.browser.conftest import Shots, accessible
from tests.browser.test_seed_procedures import staff_signs_in
from tests.system.conftest import RunningStack


async def test_deactivate_asks_first_keeps_the_calendar_and_reactivates(
    page: Page, stack: RunningStack, shots: Shots
) -> None:
    name = f"Dr. Vera Rubin {uuid.uuid4().hex[:4]}"
    await staff_signs_in(page, stack)
    await page.goto(f"{stack.url}/staff/practice/providers")
    await page.get_by_label("Display name").fill(name)
    await page.get_by_role("button", name="Add provider").click()
    await expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    await page.get_by_role("link", name="Deactivate provider").click()
    await expect(page.get_by_role("heading", name=f"Deactivate {name}?")).to_be_visible()
    await shots.take(page, "confirm-deactivate")
    await page.get_by_role("link", name="Cancel").click()  # a mis-click changes nothing
    await expect(page.get_by_text("Active", exact=True)).to_be_visible()
    await page.get_by_role("link", name="Deactivate provider").click()
    await page.get_by_role("button", name="Deactivate provider").click()
    await expect(page.get_by_text("Provider deactivated")).to_be_visible()
    await shots.take(page, "deactivated")

    await page.get_by_role("link", name="Calendar", exact=True).first.click()
    options = page.get_by_label("Provider").locator("option")
    await expect(options.filter(has_text=f"{name} (inactive)")).to_have_count(1)
    await accessible(page)

    await page.goto(f"{stack.url}/staff/practice/providers")
    await page.get_by_role("link", name=name, exact=True).click()
    await page.get_by_role("button", name="Reactivate provider").click()
    await expect(page.get_by_text("Provider reactivated")).to_be_visible()
    await shots.take(page, "reactivated")
