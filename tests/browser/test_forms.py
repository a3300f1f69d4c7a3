"""Forms in Chromium: the seed's four admin steps, a patient signing a consent form on a phone
with a drawn signature (kept, and drawn again, when the page comes back with a problem), staff
accepting it from the review queue (which names the patient and is where they return), and the
certificate PDF rendered to a PNG.

Seed: ../shared/seed/patient-portal.txt — "Select the Forms to Make Available". Every page
visited is checked with axe-core (no violations).
"""

from __future__ import annotations

import re
import subprocess

from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import ARTIFACTS, Shots, accessible
from tests.browser.test_seed_procedures import staff_signs_in
from tests.integration.events import eventually
from tests.system.conftest import RunningStack
from tests.system.test_patient_portal import issue_credentials

CONSENT = "Consent to treatment"
HISTORY = "Medical history"
NEW_PASSWORD = "Lantern-orchard-47"


def named(visible: str, title: str) -> re.Pattern[str]:
    """The accessible name of a per-row control: its visible word, then the form's title."""
    return re.compile(rf"^{visible}\s*:\s*{re.escape(title)}$")


async def titles_in_order(page: Page) -> list[str]:
    return [
        t or ""
        for t in await page.locator("tbody[data-reorder-rows] tr").evaluate_all(
            "rows => rows.map(r => r.getAttribute('data-form-title'))"
        )
    ]


async def select_portal_forms(page: Page, shots: Shots, titles: list[str]) -> None:
    """The seed's four steps, clicked: Practice, Administrative, Patient Portal Forms, Update."""
    await page.get_by_role("link", name="Practice", exact=True).click()  # 1
    await accessible(page)
    await (
        page.get_by_role("navigation", name="Section")
        .get_by_role("link", name="Administrative")
        .click()
    )  # 2
    await accessible(page)
    await (
        page.get_by_role("navigation", name="Section")
        .get_by_role("link", name="Patient Portal Forms")
        .click()
    )
    await expect(
        page.get_by_role("heading", name="Patient Portal Forms Administration")
    ).to_be_visible()
    await accessible(page)
    await shots.take(page, "portal-forms")
    for title in titles:  # 3: the checkbox of each form, then its order
        await page.get_by_role("checkbox", name=named("Available", title)).check()
    # Move each chosen form to the top with Up (script moves the row in place; focus stays).
    for title in reversed(titles):
        while (await titles_in_order(page))[0] != title:
            await page.get_by_role("button", name=named("Up", title)).press("Enter")
    await expect(page.locator("[data-reorder-status]")).to_contain_text("moved to position 1")
    assert (await titles_in_order(page))[: len(titles)] == titles
    await shots.take(page, "portal-forms-ordered")
    await page.get_by_role("button", name="Update").click()  # 4
    await expect(page.get_by_text("Patient Portal Forms updated.")).to_be_visible()
    assert (await titles_in_order(page))[: len(titles)] == titles
    await accessible(page)


async def test_seed_select_the_forms_to_make_available(
    page: Page, stack: RunningStack, shots: Shots
) -> None:
    await staff_signs_in(page, stack)
    await select_portal_forms(page, shots, [HISTORY, CONSENT])
    for title in (HISTORY, CONSENT):
        await expect(page.get_by_role("checkbox", name=named("Available", title))).to_be_checked()
    # The form library shows the positions; a form's page its version.
    await page.get_by_role("link", name="Form library").click()
    await accessible(page)
    await expect(page.get_by_role("row", name=re.compile(HISTORY))).to_contain_text("Position 1")
    await page.get_by_role("link", name=HISTORY, exact=True).click()
    await expect(page.get_by_text("Version 1", exact=False).first).to_be_visible()
    await accessible(page)
    await page.get_by_role("link", name="Edit", exact=True).click()
    await expect(page.get_by_label("Title")).to_have_value(HISTORY)
    await accessible(page)
    await shots.take(page, "form-builder")


async def test_patient_signs_a_consent_form_on_a_phone_and_staff_accept_it(
    browser: Browser, page: Page, stack: RunningStack, shots: Shots
) -> None:
    await staff_signs_in(page, stack)
    await select_portal_forms(page, shots, [CONSENT])
    patient, issued = await issue_credentials(stack)
    name = f"{patient['first_name']} {patient['last_name']}"

    phone = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    phone.set_default_timeout(10_000)
    mobile = await phone.new_page()
    try:
        await mobile.goto(f"{stack.url}/portal/onsite/login")
        await mobile.get_by_label("Username").fill(issued["username"])
        await mobile.get_by_label("Password").fill(issued["password"])
        await mobile.get_by_role("button", name="Sign in").click()
        await mobile.get_by_label("Current password").fill(issued["password"])
        await mobile.get_by_label(re.compile(r"^New password")).fill(NEW_PASSWORD)
        await mobile.get_by_label("Confirm new password").fill(NEW_PASSWORD)
        await mobile.get_by_role("button", name="Change password").click()
        await expect(mobile.get_by_role("heading", name=re.compile("^Welcome"))).to_be_visible()

        # The consent form reaches the chart through events: reload Forms until it is there.
        async def forms_page() -> int:
            await mobile.goto(f"{stack.url}/portal/onsite/forms")
            return await mobile.get_by_role("link", name=CONSENT).count()

        assert await eventually(forms_page, lambda n: n == 1, timeout=20)
        await accessible(mobile)
        await shots.take(mobile, "phone-forms")
        await mobile.get_by_role("link", name=CONSENT).click()
        await expect(mobile.get_by_role("heading", name="Sign electronically")).to_be_visible()
        await accessible(mobile)

        # Sign without agreeing: the error summary links to the checkbox.
        await (
            mobile.get_by_role("group", name=re.compile("^I have read and understood"))
            .get_by_label("Yes")
            .check()
        )
        await mobile.get_by_label("Your full name").fill(name)
        await mobile.get_by_role("button", name="Sign", exact=True).click()
        summary = mobile.locator(".error-summary")
        await expect(summary).to_contain_text("Agree to sign electronically")
        await accessible(mobile)
        await summary.get_by_role("link").first.click()
        await expect(mobile.get_by_label(re.compile("^I agree to sign"))).to_be_focused()

        # Agree, type the name, draw a signature with touch-like pointer strokes, sign.
        await mobile.get_by_label(re.compile("^I agree to sign")).check()
        await mobile.get_by_label("Your full name").fill(name)
        canvas = mobile.locator("canvas.signature-canvas")
        await canvas.scroll_into_view_if_needed()
        box = await canvas.bounding_box()
        assert box is not None
        await mobile.mouse.move(box["x"] + 20, box["y"] + box["height"] * 0.7)
        await mobile.mouse.down()
        for step in range(1, 16):
            x = box["x"] + 20 + step * (box["width"] - 40) / 15
            y = box["y"] + box["height"] * (0.7 - 0.4 * ((step % 4) / 3))
            await mobile.mouse.move(x, y, steps=3)
        await mobile.mouse.up()
        drawn = mobile.locator('input[name="drawn_signature"]')
        drawing = await drawn.input_value()
        assert drawing.startswith("data:image/png;base64,")
        await shots.take(mobile, "phone-consent-drawn")
        # Without the typed name: the page comes back with the drawing kept and drawn again.
        await mobile.get_by_label("Your full name").fill("")
        await mobile.get_by_role("button", name="Sign", exact=True).click()
        await expect(mobile.locator(".error-summary")).to_contain_text("Type your full name")
        await expect(mobile.get_by_text("Your drawing is kept.")).to_be_visible()
        assert await drawn.input_value() == drawing
        inked = await canvas.evaluate(
            "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
            ".some((v, i) => i % 4 === 3 && v > 0)"
        )
        assert inked, "the kept drawing is on the canvas again"
        await accessible(mobile)
        await mobile.get_by_label(re.compile("^I agree to sign")).check()
        await mobile.get_by_label("Your full name").fill(name)
        await mobile.get_by_role("button", name="Sign", exact=True).click()
        await expect(mobile.get_by_text("Thank you. The form is signed.")).to_be_visible()
        await expect(mobile.get_by_text("Yes, SHA-256")).to_be_visible()  # the drawn image
        document = (await mobile.locator(".signature-record .hash").first.inner_text()).strip()
        assert re.fullmatch(r"[0-9a-f]{64}", document)
        await accessible(mobile)
        await shots.take(mobile, "phone-signed")

        # The certificate PDF, rendered with pdftoppm and kept as an artifact to look at.
        pdf_url = mobile.url.split("?")[0] + "/certificate.pdf"
        reply = await mobile.request.get(pdf_url)
        assert reply.status == 200 and reply.headers["content-type"] == "application/pdf"
        folder = ARTIFACTS / "certificate"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "certificate.pdf").write_bytes(await reply.body())
        subprocess.run(
            ["pdftoppm", "-png", "-r", "70", str(folder / "certificate.pdf"), str(folder / "page")],
            check=True,
        )
        assert sorted(folder.glob("page*.png"))
        text = subprocess.run(
            ["pdftotext", str(folder / "certificate.pdf"), "-"], capture_output=True, text=True
        ).stdout
        assert document in text.replace("\n", "").replace(" ", "") or document[:16] in text
        assert str(patient["id"]) not in text and "the patient" in text  # names, not ids
    finally:
        await phone.close()

    # Staff: the review queue names the patient; the form, Accept, and back to the queue.
    await page.get_by_role("link", name="Patients", exact=True).click()
    await page.get_by_role("link", name="Forms review queue").click()
    await accessible(page)
    listed = f"{patient['last_name']}, {patient['first_name']}"
    row = page.locator("tr").filter(has=page.get_by_role("link", name=listed))
    await expect(row).to_have_count(1)
    await row.get_by_role("link", name=CONSENT).click()
    await expect(page.get_by_role("heading", name="Signature record")).to_be_visible()
    await expect(page.locator(".signature-record")).to_contain_text(document)
    await expect(page.locator(".signature-record")).to_contain_text("Valid")
    await accessible(page)
    form_url = page.url.split("?")[0]
    await page.get_by_role("button", name="Accept").click()
    await expect(page.get_by_role("heading", name="Forms review queue")).to_be_visible()
    await expect(page.get_by_text("Form accepted into the chart.")).to_be_visible()
    await expect(page.get_by_role("link", name=listed)).to_have_count(0)
    await accessible(page)
    await shots.take(page, "staff-accepted")
    await page.goto(form_url)
    await page.get_by_role("link", name="Print view").click()
    await expect(page.get_by_role("heading", name=CONSENT)).to_be_visible()
    await accessible(page)
