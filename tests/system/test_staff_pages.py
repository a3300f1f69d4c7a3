"""The staff portal driven like a browser: sign in, patients, Choices, credentials, admin.

Every step of the spec's staff procedures runs through the real gateway and identity
(processes, real PostgreSQL): cookies, CSRF tokens and redirects as a browser sees them.
"""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from services.gateway.staff import letter_token
from services.identity import refusals
from tests.conftest import TEST_GATEWAY_SECRET
from tests.system.conftest import RunningStack

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CHART_LINK = re.compile(r'href="/staff/patients/([0-9a-f-]{36})"')
MENU = re.compile(r'id="patient-info-menu"[^>]*>(.*?)</ul>', re.S)
CREDENTIAL = re.compile(r'<dt>{}</dt>\s*<dd class="credential-value[^"]*">([^<]+)</dd>')
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')
LETTER_KEY = letter_token.key_for(TEST_GATEWAY_SECRET)


@dataclass
class Page:
    status: int
    url: str
    text: str


class Browser:
    """A cookie-keeping client that fills in the CSRF token like a form would."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.csrf = ""

    async def get(self, path: str, *, follow: bool = True) -> Page:
        async with self.http.get(self.base + path, allow_redirects=follow) as reply:
            page = Page(reply.status, str(reply.url), await reply.text())
        if not follow:
            page.url = reply.headers.get("Location", "")
        found = CSRF.search(page.text)
        if found:
            self.csrf = found[1]
        return page

    async def post(
        self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, follow=True
    ) -> Page:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        async with self.http.post(self.base + path, data=form, allow_redirects=follow) as reply:
            body = await reply.read()
            text = body.decode("utf-8", "replace")
            page = Page(reply.status, str(reply.url), text)
            if not follow:
                page.url = reply.headers.get("Location", "")
            self.last_headers = reply.headers
            self.last_body = body
        found = CSRF.search(page.text)
        if found:
            self.csrf = found[1]
        return page

    async def sign_in(self, username: str, password: str) -> Page:
        await self.get("/staff/login")
        return await self.post("/staff/login", {"username": username, "password": password})


@pytest.fixture
async def browser(stack: RunningStack) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield Browser(http, stack.url)


@pytest.fixture
async def admin(stack: RunningStack, browser: Browser) -> Browser:
    page = await browser.sign_in("admin", stack.admin_password)
    assert page.status == 200 and page.url.endswith("/staff/patients"), page.text[:500]
    return browser


def unique_last_name() -> str:
    # Letters only, so the name search (not the chart-number or id search) finds it.
    return "Tst" + "".join(chr(ord("a") + int(c, 16) % 26) for c in uuid.uuid4().hex[:10])


async def add_patient(b: Browser, first: str, last: str, dob: str = "1980-04-23") -> str:
    await b.get("/staff/patients/new")
    page = await b.post(
        "/staff/patients/new",
        {"first_name": first, "last_name": last, "date_of_birth": dob, "sex": "female"},
    )
    assert page.status == 200, page.text[:2000]
    found = re.search(r"/staff/patients/([0-9a-f-]{36})$", page.url)
    assert found, page.url
    assert "Patient added." in page.text  # the one-time message on the new chart
    return found[1]


def menu_items(page: Page) -> str:
    found = MENU.search(page.text)
    assert found, "the chart has no Patient Info menu"
    return html.unescape(found[1])


def input_value(page: Page, name: str) -> str:
    found = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page.text)
    assert found, f"the page has no {name} input with a value"
    return html.unescape(found[1])


def credential(page: Page, label: str) -> str:
    found = re.search(CREDENTIAL.pattern.format(label), page.text)
    assert found, f"the letter shows no {label}"
    return html.unescape(found[1]).strip()


async def allow_portal(b: Browser, patient_id: str) -> Page:
    await b.get(f"/staff/patients/{patient_id}/demographics?tab=choices")
    return await b.post(
        f"/staff/patients/{patient_id}/demographics?tab=choices",
        {"allow_patient_portal": "yes", "preferred_contact": "email", "allow_email": "1"},
    )


# --- Sign-in --------------------------------------------------------------------------------


async def test_pages_need_a_staff_session(browser: Browser) -> None:
    for path in ("/staff/patients", "/staff/admin", f"/staff/patients/{uuid.uuid4()}"):
        page = await browser.get(path, follow=False)
        assert (page.status, page.url) == (303, "/staff/login"), path
    page = await browser.get("/staff/", follow=False)
    assert (page.status, page.url) == (303, "/staff/patients")


async def test_sign_in_with_a_wrong_password_says_nothing_specific(
    stack: RunningStack, browser: Browser
) -> None:
    page = await browser.sign_in("admin", "not-the-password-1")
    assert page.status == 401
    assert "Invalid username or password." in page.text
    unknown = await browser.sign_in("nobody-" + uuid.uuid4().hex[:6], "not-the-password-1")
    assert unknown.status == 401 and "Invalid username or password." in unknown.text
    assert "portal_staff" not in {c.key for c in browser.http.cookie_jar}


async def test_sign_in_and_out(stack: RunningStack, browser: Browser) -> None:
    page = await browser.sign_in("admin", stack.admin_password)
    assert page.url.endswith("/staff/patients")
    assert "Patient Search/Add" in page.text and "Sign out" in page.text
    cookie = next(c for c in browser.http.cookie_jar if c.key == "portal_staff")
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    token = cookie.value

    page = await browser.post("/staff/logout")
    assert page.url.endswith("/staff/login")
    assert (await browser.get("/staff/patients", follow=False)).status == 303
    # The old token is dead on the server, not just forgotten by the browser.
    browser.http.cookie_jar.update_cookies({"portal_staff": token})
    assert (await browser.get("/staff/patients", follow=False)).url == "/staff/login"


async def test_a_post_without_the_csrf_token_is_refused(admin: Browser) -> None:
    page = await admin.post("/staff/patients", {"query": "smith"}, csrf=False)
    assert page.status == 403
    page = await admin.post("/staff/patients/new", {"first_name": "X"}, csrf=False)
    assert page.status == 403


# --- Patient Search/Add and the chart --------------------------------------------------------


async def test_add_patient_shows_field_errors(admin: Browser) -> None:
    await admin.get("/staff/patients/new")
    page = await admin.post(
        "/staff/patients/new",
        {"first_name": "", "last_name": "Doe", "date_of_birth": "1980-13-45", "sex": "female"},
    )
    assert page.status == 400
    assert 'class="error-summary"' in page.text
    assert 'href="#f-first_name"' in page.text and 'href="#f-date_of_birth"' in page.text
    assert 'id="f-first_name" name="first_name"' in page.text
    assert 'aria-invalid="true"' in page.text
    assert 'value="Doe"' in page.text  # what was typed stays


async def test_search_add_duplicate_and_open_the_chart(admin: Browser) -> None:
    last = unique_last_name()
    patient_id = await add_patient(admin, "Maria", last)
    chart = await admin.get(f"/staff/patients/{patient_id}")
    assert "Patient added." not in chart.text  # shown once only
    assert f"Maria {last}" in chart.text and "1980-04-23" in chart.text

    # The same name and date of birth again: a warning, the match, and "Add anyway".
    page = await admin.post(
        "/staff/patients/new",
        {"first_name": "maria", "last_name": last, "date_of_birth": "1980-04-23", "sex": "female"},
    )
    assert page.status == 409
    assert refusals.DUPLICATE_PATIENT in page.text  # identity's sentence, as it is
    assert f'href="/staff/patients/{patient_id}"' in page.text
    # The match as identity reported it: name, date of birth and chart number.
    number = re.search(r'<dt>Chart number</dt><dd class="mono">(\d+)</dd>', chart.text)
    assert number and f'<span class="mono">{number[1]}</span>' in page.text
    assert 'name="confirm_duplicate"' in page.text
    page = await admin.post(
        "/staff/patients/new",
        {
            "first_name": "maria",
            "last_name": last,
            "date_of_birth": "1980-04-23",
            "sex": "female",
            "confirm_duplicate": "1",
        },
    )
    second = page.url.rsplit("/", 1)[-1]
    assert page.status == 200 and second != patient_id

    # Search by name is a POST: the name never appears in the URL.
    page = await admin.post("/staff/patients", {"query": last})
    assert page.status == 200 and page.url.endswith("/staff/patients")
    assert last not in page.url
    assert set(CHART_LINK.findall(page.text)) == {patient_id, second}
    assert "Portal allowed" in page.text
    # By date of birth too.
    page = await admin.post("/staff/patients", {"query": "04/23/1980"})
    assert patient_id in CHART_LINK.findall(page.text)


async def test_unknown_or_malformed_patient_is_404(admin: Browser) -> None:
    assert (await admin.get(f"/staff/patients/{uuid.uuid4()}")).status == 404
    assert (await admin.get("/staff/patients/not-an-id")).status == 404
    last = unique_last_name()
    patient_id = await add_patient(admin, "Ana", last)
    assert (await admin.get(f"/staff/patients/{patient_id}/portal/elsewhere/create")).status == 404


async def test_demographics_tabs_save_only_their_fields(admin: Browser) -> None:
    last = unique_last_name()
    patient_id = await add_patient(admin, "Lena", last)
    page = await admin.get(f"/staff/patients/{patient_id}/demographics?tab=contact")
    assert 'aria-current="page">Contact<' in page.text
    page = await admin.post(
        f"/staff/patients/{patient_id}/demographics?tab=contact",
        {"email": "not-an-email", "phone": "", "address": ""},
    )
    assert page.status == 400 and 'href="#f-email"' in page.text
    page = await admin.post(
        f"/staff/patients/{patient_id}/demographics?tab=contact",
        {"email": "lena@example.org", "phone": "555 123 4567", "address": "1 Main St"},
    )
    assert page.url.endswith(f"/staff/patients/{patient_id}")
    assert "Contact details saved." in page.text
    assert "lena@example.org" in page.text and f"Lena {last}" in page.text
    # The flash shows once.
    assert "Contact details saved." not in (await admin.get(f"/staff/patients/{patient_id}")).text


async def test_create_and_reset_onsite_credentials(stack: RunningStack, admin: Browser) -> None:
    last = unique_last_name()
    patient_id = await add_patient(admin, "Rosa", last)
    chart_url = f"/staff/patients/{patient_id}"

    # Portal not allowed: the menu explains where to change it and offers nothing to create.
    chart = await admin.get(chart_url)
    items = menu_items(chart)
    assert "Allow Patient Portal is No" in items and "Create" not in items
    refused = await admin.get(f"{chart_url}/portal/onsite/create")
    assert refused.status == 409 and "Allow Patient Portal is No" in refused.text

    # Demographics → Edit → Choices: Allow Patient Portal = Yes.
    chart = await allow_portal(admin, patient_id)
    assert chart.url.endswith(chart_url)
    assert "Allow Patient Portal is now Yes" in chart.text
    items = menu_items(chart)
    assert "Create Onsite Portal Credentials" in items
    assert "Create Offsite Portal Credentials" in items
    assert "Reset" not in items

    # Generate Username and Password: a suggestion, Change gives another password.
    page = await admin.get(f"{chart_url}/portal/onsite/create")
    assert page.status == 200 and "Generate Username and Password" in page.text
    fields = dict(HIDDEN.findall(page.text))
    first_password = html.unescape(fields["password"])
    assert len(first_password) >= 12
    username = input_value(page, "username")
    assert username
    page = await admin.post(
        f"{chart_url}/portal/onsite/create",
        {"action": "regenerate", "username": username, "password": first_password},
    )
    changed = html.unescape(dict(HIDDEN.findall(page.text))["password"])
    assert changed != first_password

    # Save: the printable letter with the onsite address, the username and the password.
    letter = await admin.post(
        f"{chart_url}/portal/onsite/create",
        {"action": "save", "username": username, "password": changed},
    )
    assert letter.status == 200, letter.text[:2000]
    assert 'class="letter"' in letter.text
    settings_onsite = stack.url + "/portal/onsite/"
    assert credential(letter, "Patient Portal Web Address") == settings_onsite
    assert credential(letter, "User Name") == username
    assert credential(letter, "Password") == changed
    assert 'data-action="print"' in letter.text
    assert "expires on" in letter.text
    # Times are in the clinic's zone (the test stack says America/New_York) and say so.
    assert re.search(r"expires on \w+ \d\d \w+ \d{4} at \d\d:\d\d E[SD]T", letter.text)

    # Download PDF from the letter's own (signed) fields.
    await admin.post(f"{chart_url}/portal/onsite/letter.pdf", letter_fields(letter))
    assert admin.last_headers["Content-Type"] == "application/pdf"
    assert admin.last_body.startswith(b"%PDF")
    assert "portal-credentials.pdf" in admin.last_headers["Content-Disposition"]
    assert admin.last_headers["Cache-Control"] == "no-store"

    # The chart now offers Reset Onsite, not Create Onsite, and shows the pending change.
    chart = await admin.get(chart_url)
    items = menu_items(chart)
    assert "Reset Onsite Portal Credentials" in items
    assert "Create Onsite Portal Credentials" not in items
    assert "Create Offsite Portal Credentials" in items
    assert "Must change password" in chart.text and username in chart.text
    # Issuing twice is refused with a clear message.
    again = await admin.post(
        f"{chart_url}/portal/onsite/create",
        {"action": "save", "username": username + "x", "password": changed},
    )
    assert again.status == 409 and "already has onsite portal credentials" in again.text

    # Nothing to reset offsite: identity's reason, before anyone confirms.
    nothing = await admin.get(f"{chart_url}/portal/offsite/reset")
    assert nothing.status == 409 and refusals.no_account("offsite") in nothing.text

    # Reset: a confirmation page, then a letter with a new temporary password.
    confirm = await admin.get(f"{chart_url}/portal/onsite/reset")
    assert username in confirm.text
    assert confirm.status == 200 and "session" in confirm.text
    reset = await admin.post(f"{chart_url}/portal/onsite/reset")
    assert reset.status == 200
    temporary = credential(reset, "Password")
    assert len(temporary) >= 12 and temporary != changed
    assert credential(reset, "User Name") == username
    assert "Temporary password created" in reset.text and "expires on" in reset.text


async def test_a_typed_password_is_checked_on_save(admin: Browser) -> None:
    last = unique_last_name()
    patient_id = await add_patient(admin, "Ivo", last)
    await allow_portal(admin, patient_id)
    url = f"/staff/patients/{patient_id}/portal/offsite/create"
    page = await admin.get(url)
    username = input_value(page, "username")
    page = await admin.post(
        url, {"action": "custom", "username": username, "custom_password": "short"}
    )
    assert page.status == 200 and ">short<" in page.text
    assert 'name="custom" value="1"' in page.text
    page = await admin.post(
        url, {"action": "save", "username": username, "password": "short", "custom": "1"}
    )
    assert page.status == 400
    assert 'class="error-summary"' in page.text and 'class="letter"' not in page.text
    # The reason sits at the typed password, which stays there to edit; the password offered
    # for Save is a generated one again.
    assert 'id="f-custom_password-error"' in page.text and 'value="short"' in page.text
    assert ">short<" not in page.text and "Generated by the system" in page.text
    # Nothing was issued.
    assert "Create Offsite Portal Credentials" in menu_items(
        await admin.get(f"/staff/patients/{patient_id}")
    )


async def test_a_script_name_is_text_everywhere(admin: Browser) -> None:
    script = "<script>alert(1)</script>"
    last = unique_last_name()
    patient_id = await add_patient(admin, script, last)
    escaped = html.escape(script, quote=False)
    chart = await admin.get(f"/staff/patients/{patient_id}")
    assert script not in chart.text and escaped in chart.text

    results = await admin.post("/staff/patients", {"query": last})
    assert patient_id in results.text
    assert script not in results.text and escaped in results.text

    await allow_portal(admin, patient_id)
    page = await admin.get(f"/staff/patients/{patient_id}/portal/onsite/create")
    assert script not in page.text
    fields = dict(HIDDEN.findall(page.text))
    letter = await admin.post(
        f"/staff/patients/{patient_id}/portal/onsite/create",
        {"action": "save", "username": "", "password": html.unescape(fields["password"])},
    )
    assert letter.status == 200 and 'class="letter"' in letter.text
    assert script not in letter.text and escaped in letter.text
    pdf_fields = letter_fields(letter)
    signed = letter_token.unseal(pdf_fields["letter"], LETTER_KEY, datetime.now(UTC))
    assert script in signed.patient_name  # the signed field round-trips the text
    await admin.post(f"/staff/patients/{patient_id}/portal/onsite/letter.pdf", pdf_fields)
    assert admin.last_body.startswith(b"%PDF")
    assert f"For: {script}" in pdf_text(admin.last_body)


def letter_fields(letter: Page) -> dict[str, str]:
    """The letter page's PDF form, as the browser would post it (without the CSRF token)."""
    fields = {k: html.unescape(v) for k, v in HIDDEN.findall(letter.text)}
    fields.pop("csrf_token", None)
    assert list(fields) == ["letter"], fields  # one signed value, nothing else
    return fields


def pdf_text(body: bytes) -> str:
    tool = shutil.which("pdftotext")
    assert tool, "pdftotext is missing: install poppler-utils (make browser does)"
    done = subprocess.run([tool, "-enc", "UTF-8", "-", "-"], input=body, capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


async def test_the_letter_pdf_comes_only_from_a_letter_the_gateway_issued(
    admin: Browser,
) -> None:
    last = unique_last_name()
    patient_id = await add_patient(admin, "王小明", last)
    other_id = await add_patient(admin, "Zoë Ångström", last)
    await allow_portal(admin, patient_id)
    url = f"/staff/patients/{patient_id}/portal/offsite"
    page = await admin.get(f"{url}/create")
    letter = await admin.post(
        f"{url}/create",
        {
            "action": "save",
            "username": "",
            "password": html.unescape(dict(HIDDEN.findall(page.text))["password"]),
        },
    )
    assert letter.status == 200 and 'class="letter"' in letter.text
    sealed = letter_fields(letter)["letter"]
    fields = letter_token.unseal(sealed, LETTER_KEY, datetime.now(UTC))

    # The letter as issued: every name prints as typed.
    await admin.post(f"{url}/letter.pdf", {"letter": sealed})
    assert admin.last_headers["Content-Type"] == "application/pdf"
    text = pdf_text(admin.last_body)
    assert f"For: 王小明 {last}" in text and fields.password in text

    # Changed, unsigned or missing fields, and a letter posted to another chart: 400.
    body, _, mac = sealed.partition(".")
    forged = letter_token.seal(
        dataclasses.replace(fields, patient_name="Someone Else"), letter_token.key_for("guess")
    )
    for form in (
        {"letter": body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac},
        {"letter": forged},
        {"letter": ""},
        {"patient_name": "Someone Else", "username": "x", "password": "Chosen-by-me-123"},
    ):
        page = await admin.post(f"{url}/letter.pdf", form)
        assert page.status == 400, form
        assert "This letter cannot be downloaded" in page.text and "%PDF" not in page.text
    page = await admin.post(
        f"/staff/patients/{other_id}/portal/offsite/letter.pdf", {"letter": sealed}
    )
    assert page.status == 400
    page = await admin.post(
        f"/staff/patients/{patient_id}/portal/onsite/letter.pdf", {"letter": sealed}
    )
    assert page.status == 400

    # A letter made longer ago than the download window: 410, and it says what to do.
    old = dataclasses.replace(
        fields,
        issued_at=(datetime.now(UTC) - letter_token.LIFETIME - timedelta(minutes=1)).isoformat(),
    )
    page = await admin.post(f"{url}/letter.pdf", {"letter": letter_token.seal(old, LETTER_KEY)})
    assert page.status == 410
    assert "reset the credentials" in page.text and "%PDF" not in page.text

    # Exactly the one download made a PDF, and the audit log (ListAuditEvents) says so.
    audit = await admin.get(f"/staff/admin/audit?patient_id={patient_id}")
    assert audit.text.count("credentials.letter_downloaded") == 1


# --- Admin ------------------------------------------------------------------------------------


async def test_admin_pages_are_for_admins_only(stack: RunningStack, admin: Browser) -> None:
    page = await admin.get("/staff/admin")
    assert page.status == 200 and "Audit log" in page.text
    username = "desk" + uuid.uuid4().hex[:8]
    password = "Desk-password-" + uuid.uuid4().hex[:8]
    await admin.get("/staff/admin/staff")
    bad = await admin.post(
        "/staff/admin/staff",
        {"username": username, "display_name": "Front Desk", "role": "front_desk", "password": "x"},
    )
    assert bad.status == 400 and 'href="#f-password"' in bad.text
    page = await admin.post(
        "/staff/admin/staff",
        {
            "username": username,
            "display_name": "Front Desk",
            "role": "front_desk",
            "password": password,
        },
    )
    assert page.url.endswith("/staff/admin/staff") and username in page.text

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        desk = Browser(http, stack.url)
        page = await desk.sign_in(username, password)
        assert page.url.endswith("/staff/patients") and "Front Desk" in page.text
        assert 'href="/staff/admin"' not in page.text  # no tab that only leads to a 403
        assert (await desk.get("/staff/admin")).status == 403
        assert (await desk.get("/staff/admin/audit")).status == 403
        assert (await desk.get("/staff/admin/staff")).status == 403
        assert (await desk.get("/staff/practice")).status == 200


async def test_audit_log_filters_by_patient(admin: Browser) -> None:
    last = unique_last_name()
    patient_id = await add_patient(admin, "Otto", last)
    await admin.get(f"/staff/patients/{patient_id}")
    page = await admin.get(f"/staff/admin/audit?patient_id={patient_id}")
    assert page.status == 200
    assert "patient.read" in page.text and "patient.register" in page.text
    assert set(CHART_LINK.findall(page.text)) == {patient_id}
    assert last not in page.text  # ids, never names
    bad = await admin.get("/staff/admin/audit?patient_id=Smith")
    assert bad.status == 400 and 'href="#f-patient_id"' in bad.text


# Last in the module: it spends this address's sign-in allowance.
async def test_sign_in_is_rate_limited_per_address(browser: Browser) -> None:
    await browser.get("/staff/login")
    statuses = []
    for _ in range(60):
        page = await browser.post(
            "/staff/login", {"username": "admin", "password": "wrong-password-123"}
        )
        statuses.append(page.status)
        if page.status == 429:
            break
    assert statuses[-1] == 429, statuses
    assert set(statuses[:-1]) == {401}
    assert "Too many" in page.text
    assert int(browser.last_headers["Retry-After"]) >= 1
