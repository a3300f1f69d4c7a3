"""Headless Chromium (the system's, driven by Playwright) against the whole running stack."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from tests.system.conftest import stack  # noqa: F401 - the same whole-stack fixture

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
# What a root CI machine with no network needs: no sandbox, no background connections.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        await browser.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = await context.new_page()
    yield page
    await context.close()


AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def axe_source() -> str:
    # axe-core as shipped in the axe-playwright-python wheel (no network at test time).
    return (resources.files("axe_playwright_python") / "axe.min.js").read_text()


async def accessible(page: Page) -> None:
    """axe-core finds no WCAG 2.1 A/AA violation on the page as it is now."""
    await page.evaluate(axe_source())
    result = await page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})"
        ".then(r => r.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' '))})))",
        AXE_TAGS,
    )
    assert result == [], f"{page.url}: {json.dumps(result, indent=1)}"


class Shots:
    """Numbered screenshots of one test, kept as test artifacts; each page shot is checked
    with axe-core first, so every page a browser test shows passes WCAG 2.1 A/AA."""

    def __init__(self, name: str) -> None:
        self.folder = ARTIFACTS / name
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    async def take(self, page: Page, label: str) -> None:
        await accessible(page)
        self.count += 1
        await page.screenshot(path=self.folder / f"{self.count:02d}-{label}.png", full_page=True)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)
