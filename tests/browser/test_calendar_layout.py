"""Practice → Calendar in Chromium: a week, and seven providers side by side for a day, fit a
1920x1080 screen with no column out of view; printed on A4 every column is on the sheet
(landscape), with the time off and "No hours" notes, and the filters and navigation are not; on
a phone a hint says the columns scroll sideways. Every page shown has no WCAG 2.1 A/AA violation
(axe-core).

A stack of its own, so the all-providers day holds exactly this test's seven providers.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from services.gateway.clinic_time import short_day
from tests.browser.conftest import Shots, accessible
from tests.browser.test_seed_procedures import staff_signs_in
from tests.system.conftest import RunningStack
from tests.system.test_patient_portal import client
from tests.system.test_staff_pages import Browser as Http

pytestmark = pytest.mark.private_stack

DAY = date(2030, 3, 6)  # a Wednesday: its week is Mon 4 to Sun 10 March 2030


async def add_providers(stack: RunningStack, count: int) -> list[tuple[str, str]]:
    """(id, name) of `count` new providers."""
    added = []
    async with client() as http:
        staff = Http(http, stack.url)
        await staff.sign_in("admin", stack.admin_password)
        for n in range(count):
            name = f"Dr. Lane {n + 1} {uuid.uuid4().hex[:4]}"
            await staff.get("/staff/practice/providers")
            page = await staff.post("/staff/practice/providers", {"display_name": name})
            assert "Provider added." in page.text, page.text[:1000]
            added.append((page.url.rsplit("/", 1)[-1], name))
    return added


async def add_time_off(stack: RunningStack, provider_id: str, start: str, end: str) -> None:
    async with client() as http:
        staff = Http(http, stack.url)
        await staff.sign_in("admin", stack.admin_password)
        base = f"/staff/practice/providers/{provider_id}"
        await staff.get(base)
        form = {"off_start": start, "off_end": end, "off_reason": "Conference"}
        assert "Time off added." in (await staff.post(base + "/time-off", form)).text


async def columns_in_view(page: Page, width: int) -> None:
    """Every column lies inside the viewport and inside the calendar's own box (not clipped
    by its sideways scrolling)."""
    grid = await page.locator(".calendar").bounding_box()
    assert grid is not None
    columns = page.locator(".calendar-column")
    assert await columns.count() == 7
    for i in range(7):
        box = await columns.nth(i).bounding_box()
        assert box is not None
        right = box["x"] + box["width"]
        assert box["x"] >= 0 and right <= width, (i, box)
        assert right <= grid["x"] + grid["width"] + 0.5, (i, box, grid)


async def printed_text(page: Page) -> tuple[str, str]:
    """The page printed on A4 as the browser prints it (the page's own @page size): its text
    with whitespace collapsed, and pdfinfo's page size."""
    with tempfile.TemporaryDirectory() as folder:
        pdf = Path(folder) / "calendar.pdf"
        await page.pdf(path=pdf, format="A4", prefer_css_page_size=True)
        text = subprocess.run(
            ["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True
        ).stdout
        info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True)
    size = next(line for line in info.stdout.splitlines() if line.startswith("Page size"))
    return " ".join(text.split()), size


async def test_week_and_all_providers_fit_the_screen_and_the_printed_page(
    stack: RunningStack, browser: Browser, shots: Shots
) -> None:
    providers = await add_providers(stack, 7)
    first = providers[0][0]
    await add_time_off(stack, first, f"{DAY}T13:00", f"{DAY + timedelta(days=1)}T12:00")
    context = await browser.new_context(viewport={"width": 1920, "height": 1080})
    context.set_default_timeout(10_000)
    page = await context.new_page()
    try:
        await staff_signs_in(page, stack)

        # Seven providers side by side for a day.
        await page.goto(f"{stack.url}/staff/practice/calendar?view=day&date={DAY}")
        await expect(page.get_by_role("heading", name="Calendar", level=1)).to_be_visible()
        await columns_in_view(page, 1920)
        await expect(page.locator(".calendar-hint")).to_be_hidden()  # nothing to scroll
        await shots.take(page, "all-providers-1920")
        text, size = await printed_text(page)
        for _, name in providers:
            assert name in text, (name, text)
        width, _, height = size.split(":", 1)[1].split()[:3]
        assert float(width) > float(height), size  # landscape
        assert "All providers (day view)" not in text and "Previous" not in text, text
        assert "Time off" in text and "From 13:00" in text and "Conference" in text, text
        assert text.count("No hours") == 7, text  # none of them has weekly hours

        # One provider's week.
        await page.goto(
            f"{stack.url}/staff/practice/calendar?view=week&provider={first}&date={DAY}"
        )
        await columns_in_view(page, 1920)
        await shots.take(page, "week-1920")
        text, _ = await printed_text(page)
        monday = DAY - timedelta(days=DAY.weekday())
        for i in range(7):
            assert short_day(monday + timedelta(days=i)) in text, (i, text)
        assert "Book appointment" not in text and "Show" not in text.split(), text
        assert text.count("Time off") == 2 and "Until 12:00" in text, text

        # On a phone the columns scroll sideways, and the page says so.
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.reload()
        await expect(page.locator(".calendar-hint")).to_be_visible()
        await expect(page.locator(".calendar-hint")).to_contain_text("scroll sideways")
        await accessible(page)
        await shots.take(page, "week-phone")
    finally:
        await context.close()
