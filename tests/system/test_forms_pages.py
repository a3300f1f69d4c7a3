"""Forms pages through the real stack, as a browser sees them (cookies, CSRF, redirects).

Staff: the seed's four steps (Practice → Administrative → Patient Portal Forms → check and order
→ Update) as forms' ListForms then reports them; chart forms, review. Patients: a visit form
saved half-way, submitted with a required answer missing (the page points at it and its summary
names the question), completed; a consent form signed with nothing filled in (every problem at
once) or without a name (a drawing is kept), signed once and refused the second time; another
patient gets 404 for all of it. The review queue names the patient (an audited read) and a review
from it comes back to it; people show by name, never by internal id.
"""

from __future__ import annotations

import base64
import html
import re
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import grpc
import pytest

from portal.forms.v1 import forms_pb2 as pb
from portal.forms.v1 import forms_pb2_grpc
from services.runtime.principal import Principal
from tests.conftest import principal_signer
from tests.integration.events import eventually
from tests.system.conftest import RunningStack, service_database
from tests.system.test_patient_portal import client, issue_credentials
from tests.system.test_staff_pages import Browser, Page

NEW_PASSWORD = "Juniper-Kettle-Morning-42"
CONSENT = "Consent to treatment"
HIPAA = "Acknowledgment of the Notice of Privacy Practices (HIPAA)"
HISTORY = "Medical history"
ROW = re.compile(r'<tr data-form-title="([^"]+)">.*?name="order" value="([0-9a-f-]{36})"', re.S)
FORM_LINK = re.compile(r'href="(/portal/onsite/forms/[0-9a-f-]{36})">([^<]+)</a>')
PNG = (
    "data:image/png;base64,"
    + base64.b64encode(
        bytes.fromhex(
            "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
            "1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7d6a4cf0000000049454e44ae426082"
        )
    ).decode()
)
UUID_IN_PARENS = re.compile(r"\((?:patient |staff )?[0-9a-f]{8}-[0-9a-f]{4}-")
STAFF = Principal(kind="staff", subject="00000000-0000-0000-0000-0000000000aa", role="admin")


async def list_forms(stack: RunningStack) -> list[pb.FormSummary]:
    address = f"127.0.0.1:{stack.stack.config.service_ports['forms']}"
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await forms_pb2_grpc.FormsServiceStub(channel).ListForms(
            pb.ListFormsRequest(), metadata=principal_signer().metadata(STAFF)
        )
    return list(reply.items)


@pytest.fixture
async def admin(stack: RunningStack) -> AsyncIterator[Browser]:
    async with client() as http:
        browser = Browser(http, stack.url)
        page = await browser.sign_in("admin", stack.admin_password)
        assert page.url.endswith("/staff/patients"), page.text[:300]
        yield browser


async def patient_browser(stack: RunningStack, http: aiohttp.ClientSession) -> tuple[Browser, str]:
    """A new patient with portal access, signed in to the onsite portal; (browser, patient id)."""
    patient, issued = await issue_credentials(stack)
    b = Browser(http, stack.url)
    await b.get("/portal/onsite/login")
    page = await b.post(
        "/portal/onsite/login", {"username": issued["username"], "password": issued["password"]}
    )
    assert page.url.endswith("/portal/onsite/password"), page.url
    page = await b.post(
        "/portal/onsite/password",
        {
            "current_password": issued["password"],
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert page.status == 200 and "Welcome" in page.text
    return b, patient["id"]


def rows(page: Page) -> list[tuple[str, str]]:
    return [(html.unescape(title), form_id) for title, form_id in ROW.findall(page.text)]


async def make_available(admin: Browser, titles: list[str]) -> dict[str, str]:
    """The seed's procedure: Practice → Administrative → Patient Portal Forms → check → Update."""
    page = await admin.get("/staff/practice")  # 1. the Practice tab
    assert 'href="/staff/practice/administrative"' in page.text
    page = await admin.get("/staff/practice/administrative")  # 2. Administrative
    assert 'href="/staff/practice/portal-forms"' in page.text
    page = await admin.get("/staff/practice/portal-forms")  # ... then Patient Portal Forms
    assert "Patient Portal Forms Administration" in page.text
    ids = dict(rows(page))
    assert {CONSENT, HIPAA, HISTORY} <= set(ids)
    order = [ids[t] for t in titles] + [i for t, i in ids.items() if t not in titles]
    data = [("order", i) for i in order] + [("available", ids[t]) for t in titles]
    page = await admin_post(admin, "/staff/practice/portal-forms", data)  # 3 + 4. check, Update
    assert page.status == 200 and page.url.endswith("/staff/practice/portal-forms")
    assert "Patient Portal Forms updated." in page.text
    return ids


async def admin_post(b: Browser, path: str, data: list[tuple[str, str]]) -> Page:
    """POST repeated names (checkboxes) the way a browser sends them."""
    form = aiohttp.FormData([*data, ("csrf_token", b.csrf)])
    async with b.http.post(b.base + path, data=form) as reply:
        page = Page(reply.status, str(reply.url), await reply.text())
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    if found:
        b.csrf = found[1]
    return page


async def test_patient_portal_forms_update_sets_the_catalog_in_order(
    stack: RunningStack, admin: Browser
) -> None:
    ids = await make_available(admin, [HISTORY, CONSENT])
    listed = await list_forms(stack)
    portal = [(f.title, f.position) for f in listed if f.available_in_portal]
    assert portal == [(HISTORY, 1), (CONSENT, 2)]

    # Down (without JavaScript, a submit button) re-shows the list in the new order, unsaved.
    page = await admin.get("/staff/practice/portal-forms")
    order = [i for _, i in rows(page)]
    assert order[:2] == [ids[HISTORY], ids[CONSENT]]
    moved = await admin_post(
        admin,
        "/staff/practice/portal-forms",
        [("order", i) for i in order]
        + [("available", ids[HISTORY]), ("available", ids[CONSENT])]
        + [("move", f"down:{ids[HISTORY]}")],
    )
    assert [t for t, _ in rows(moved)][:2] == [CONSENT, HISTORY]
    assert "Click Update to save the order." in moved.text
    assert [f.title for f in await list_forms(stack) if f.available_in_portal] == [HISTORY, CONSENT]
    # Update saves the order shown and the checkboxes in one step.
    new_order = [i for _, i in rows(moved)]
    page = await admin_post(
        admin,
        "/staff/practice/portal-forms",
        [("order", i) for i in new_order]
        + [("available", ids[CONSENT]), ("available", ids[HISTORY]), ("available", ids[HIPAA])],
    )
    assert "Patient Portal Forms updated." in page.text
    portal = [(f.title, f.position) for f in await list_forms(stack) if f.available_in_portal]
    assert [t for t, _ in portal][:2] == [CONSENT, HISTORY] and HIPAA in [t for t, _ in portal]


async def patient_forms(b: Browser) -> dict[str, str]:
    page = await b.get("/portal/onsite/forms")
    assert page.status == 200
    return {html.unescape(title): url for url, title in FORM_LINK.findall(page.text)}


async def test_patient_fills_signs_and_staff_reviews(stack: RunningStack, admin: Browser) -> None:
    ids = await make_available(admin, [CONSENT, HISTORY])
    async with client() as http_a, client() as http_b:
        a, a_id = await patient_browser(stack, http_a)
        b, _ = await patient_browser(stack, http_b)
        # Portal access places the portal's consent forms in the chart (through events).
        forms = await eventually(lambda: patient_forms(a), lambda f: CONSENT in f)
        assert CONSENT in forms, forms
        page = await a.get("/portal/onsite/forms")
        assert "To do" in page.text and "Coming soon" not in page.text

        # Staff add a visit form to A's chart (Chart → Forms → Add a form).
        await admin.get(f"/staff/patients/{a_id}/forms")
        page = await admin.post(
            f"/staff/patients/{a_id}/forms", {"form_id": ids[HISTORY], "due": "2031-05-01"}
        )
        assert "Form added to the chart." in page.text and HISTORY in page.text
        forms = await patient_forms(a)
        history_url, consent_url = forms[HISTORY], forms[CONSENT]

        # Half-way: save and finish later, come back, the answers are there.
        page = await a.get(history_url)
        assert "Do you smoke? (required)" in page.text and 'name="q-surgeries"' in page.text
        half = {"q-alcohol_per_week": "4", "q-surgeries": "Appendix, 1999\nKnee, 2010"}
        page = await a.post(history_url, {**half, "action": "save"})
        assert page.url.endswith("/portal/onsite/forms?done=saved"), page.url
        assert "You can finish the form later." in page.text
        page = await a.get(history_url)
        assert 'value="4"' in page.text and "Knee, 2010</textarea>" in page.text
        assert "In progress" in page.text

        # Submit with a required answer missing: the page names it and links to the field.
        page = await a.post(history_url, {**half, "q-alcohol_per_week": "many", "action": "submit"})
        assert page.status == 400 and 'href="#f-q-alcohol_per_week"' in page.text  # not a number
        page = await a.post(history_url, {**half, "action": "submit"})
        assert page.status == 400 and 'class="error-summary"' in page.text
        # The summary names the question; the message beside the field stays short.
        assert '<a href="#f-q-smoking">Do you smoke? Answer this question.</a>' in page.text
        assert "</span> Answer this question.</li>" in page.text
        assert 'id="f-q-smoking"' in page.text

        # Answer it and submit.
        page = await a.post(history_url, {**half, "q-smoking": "never", "action": "submit"})
        assert page.status == 200, page.text[:3000]
        assert "The form is submitted" in page.text and "Completed" in page.text
        assert "Never" in page.text

        # eSign the consent form.
        page = await a.get(consent_url)
        assert "About signing electronically" in page.text
        version = re.search(r'name="disclosure_version" value="(\d+)"', page.text)
        assert version
        # Signing with nothing filled in: every problem at once (the question too), each named.
        page = await a.post(consent_url, {"action": "sign", "disclosure_version": version[1]})
        assert page.status == 400
        summary = page.text.split('class="error-summary"', 1)[1].split("</div>", 1)[0]
        links = re.findall(r'<a href="#f-([^"]+)">([^<]*)</a>', summary)
        agreement = "I have read and understood this consent and agree to… Answer this question."
        assert [(f, html.unescape(t)) for f, t in links][:1] == [("q-consent", agreement)]
        assert [f for f, _ in links][1:] == ["agree_to_electronic_signature", "typed_name"]
        # A drawing comes back with a problem (the pad draws it again); one that cannot be read
        # does not, and the page says to draw it again.
        drawn = {"action": "sign", "disclosure_version": version[1], "q-consent": "yes"}
        page = await a.post(consent_url, {**drawn, "drawn_signature": PNG})
        assert page.status == 400 and 'href="#f-typed_name"' in page.text
        assert f'name="drawn_signature" value="{PNG}"' in page.text
        page = await a.post(consent_url, {**drawn, "drawn_signature": "data:image/png;base64,!"})
        assert page.status == 400 and "could not be read; draw it again" in page.text
        assert 'name="drawn_signature" value=""' in page.text
        sign = {
            "q-consent": "yes",
            "typed_name": "Grace Portal",
            "agree_to_electronic_signature": "1",
            "disclosure_version": version[1],
            "action": "sign",
        }
        page = await a.post(consent_url, {**sign, "agree_to_electronic_signature": ""})
        assert page.status == 400 and 'href="#f-agree_to_electronic_signature"' in page.text
        # Answering No to the agreement question and signing: the page says what to do, at the
        # question, and nothing is signed.
        page = await a.post(consent_url, {**sign, "q-consent": "no"})
        assert page.status == 409 and "The form is signed." not in page.text
        declined = "To sign this consent form, agree to it; if you do not agree, tell the clinic."
        question = "I have read and understood this consent and agree to… "
        assert f'<a href="#f-q-consent">{question}{declined}</a>' in page.text
        assert 'value="Grace Portal"' in page.text  # the typed name is kept
        page = await a.post(consent_url, sign)
        assert page.status == 200 and "The form is signed." in page.text
        sha = re.search(r'class="mono hash">([0-9a-f]{64})<', page.text)
        assert sha and "Valid" in page.text
        # The patient reads who signed by name, never by an internal id.
        assert "Grace Portal" in page.text and not UUID_IN_PARENS.search(page.text)
        # Signing again is refused with a clear message.
        page = await a.post(consent_url, sign)
        assert page.status == 409 and "cannot be signed again" in page.text
        # The certificate downloads as a PDF.
        async with http_a.get(stack.url + consent_url + "/certificate.pdf") as reply:
            assert reply.status == 200 and reply.content_type == "application/pdf"
            assert (await reply.read()).startswith(b"%PDF")

        # Patient B reaches none of A's forms: view, save, submit, sign, autosave, certificate.
        await b.get("/portal/onsite/forms")
        for url in (history_url, consent_url):
            missing = await b.get(url)
            assert missing.status == 404 and "No such form." in missing.text
            for action in ("save", "submit", "sign"):
                assert (await b.post(url, {"action": action, "typed_name": "X"})).status == 404
            assert (await b.post(url + "/autosave", {"q-x": "1"})).status == 404
            assert (await b.get(url + "/certificate.pdf")).status == 404

        # Records: A's completed form and the signed one's certificate, as PDFs (a signed form
        # is listed once, by its certificate, though its answers' PDF is there too); B: 404.
        records = await a.get("/portal/onsite/records")
        history_id, consent_id = history_url.rsplit("/", 1)[1], consent_url.rsplit("/", 1)[1]
        listed = [f"records/forms/{history_id}", f"records/certificates/{consent_id}"]
        for path in (*listed, f"records/forms/{consent_id}"):
            assert (f'href="/portal/onsite/{path}"' in records.text) == (path in listed), path
            async with http_a.get(f"{stack.url}/portal/onsite/{path}") as reply:
                assert reply.status == 200 and reply.content_type == "application/pdf", path
                assert reply.headers["Content-Security-Policy"] == "sandbox"
                assert (await reply.read()).startswith(b"%PDF-")
            assert (await b.get(f"/portal/onsite/{path}")).status == 404, path
        assert "records/" not in (await b.get("/portal/onsite/records")).text

        # Staff: the review queue lists both, naming the patient ("Last, First", a read identity
        # audits); accept the signed consent from it (back to the queue), return the visit form.
        last, first = await patient_name(stack, a_id)
        reads = await name_reads(stack, a_id)
        page = await admin.get("/staff/forms/review")
        consent_id, history_id = consent_url.rsplit("/", 1)[1], history_url.rsplit("/", 1)[1]
        assert consent_id in page.text and history_id in page.text
        assert f'<a href="/staff/patients/{a_id}">{last}, {first}</a>' in page.text
        assert "Open chart" not in page.text.split(f"forms/{consent_id}", 1)[1].split("</tr>")[0]
        assert await name_reads(stack, a_id) > reads
        staff_url = f"/staff/patients/{a_id}/forms/{consent_id}"
        assert f'href="{staff_url}?from=review-queue"' in page.text
        page = await admin.get(staff_url + "?from=review-queue")
        assert "Signature record" in page.text and sha[1] in page.text and "Valid" in page.text
        assert '<li><a href="/staff/forms/review">Forms review queue</a></li>' in page.text
        assert not UUID_IN_PARENS.search(page.text)  # who did what, by name
        page = await admin.post(
            staff_url + "/review", {"decision": "accept", "from": "review-queue"}
        )
        assert page.url.endswith("/staff/forms/review"), page.url
        assert "Form accepted into the chart." in page.text and consent_id not in page.text
        page = await admin.get(staff_url)
        assert "Accepted" in page.text and not UUID_IN_PARENS.search(page.text)
        assert "Patient Search/Add" in page.text  # opened from the chart: the chart's crumbs
        print_view = await admin.get(staff_url + "/print")
        assert print_view.status == 200 and sha[1] in print_view.text
        visit_staff = f"/staff/patients/{a_id}/forms/{history_id}"
        await admin.get(visit_staff)
        page = await admin.post(visit_staff + "/review", {"decision": "return", "note": ""})
        assert page.status == 400 and 'href="#f-note"' in page.text
        page = await admin.post(
            visit_staff + "/review", {"decision": "return", "note": "Please add your allergies."}
        )
        assert "Form returned to the patient." in page.text

        # The patient reads the reason and can edit the returned form again.
        page = await a.get(history_url)
        assert "Please add your allergies." in page.text and 'value="submit"' in page.text
        # Staff see A's form only under A: another patient's URL is a 404.
        other = f"/staff/patients/{_other_patient(page.text, a_id)}/forms/{history_id}"
        assert (await admin.get(other)).status == 404


async def patient_name(stack: RunningStack, patient_id: str) -> tuple[str, str]:
    conn = await asyncpg.connect(service_database(stack, "identity"))
    try:
        row = await conn.fetchrow(
            "SELECT last_name, first_name FROM patients WHERE id = $1", uuid.UUID(patient_id)
        )
    finally:
        await conn.close()
    assert row is not None
    return row["last_name"], row["first_name"]


async def name_reads(stack: RunningStack, patient_id: str) -> int:
    """identity's audited reads of the patient's record (a name lookup is one)."""
    conn = await asyncpg.connect(service_database(stack, "identity"))
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE patient_id = $1 AND action = 'patient.read'",
            uuid.UUID(patient_id),
        )
    finally:
        await conn.close()
    return int(found)


def _other_patient(_text: str, patient_id: str) -> str:
    """Any id that is not this patient's."""
    return ("1" if patient_id[0] != "1" else "2") + patient_id[1:]


async def test_builder_creates_edits_exports_and_imports(admin: Browser) -> None:
    await admin.get("/staff/practice/forms/new")
    base = {"title": "Travel history", "kind": "visit", "rows": "3"}
    rows = {
        "link_id-0": "trip",
        "type-0": "group",
        "text-0": "Your last trip",
        "link_id-1": "country",
        "type-1": "open-choice",
        "text-1": "Where to?",
        "options-1": "fr | France\nde | Germany",
        "parent-1": "trip",
        "required-1": "1",
        "link_id-2": "back",
        "type-2": "date",
        "text-2": "When did you come back?",
        "help_text-2": "Roughly is fine.\nA month will do.",
    }
    page = await admin.post("/staff/practice/forms/new", {**base, **rows, "parent-2": "nowhere"})
    assert page.status == 400 and 'href="#f-parent-2"' in page.text  # no such group
    page = await admin.post("/staff/practice/forms/new", {**base, **rows})
    assert page.status == 200 and "Form created." in page.text, page.text[:2000]
    form_url = re.search(r"/staff/practice/forms/[0-9a-f-]{36}", page.url)
    assert form_url, page.url
    assert "Version 1" in page.text, page.text[page.text.find("<main") :][:3000]
    assert "Germany" in page.text, page.text[page.text.find("<h2>Items") :][:3000]

    # Edit (not answered yet: the same version), with a duplicate link_id refused first.
    page = await admin.get(form_url[0] + "/edit")
    assert 'value="country"' in page.text and "fr | France" in page.text
    page = await admin.post(form_url[0] + "/edit", {**base, **rows, "link_id-2": "country"})
    assert page.status == 400 and "used twice" in page.text
    page = await admin.post(form_url[0] + "/edit", {**base, **rows, "title": "Travel"})
    assert "Form saved." in page.text and "Version 1" in page.text

    # FHIR export, then import as a new form.
    async with admin.http.get(admin.base + form_url[0] + "/questionnaire.json") as reply:
        assert reply.status == 200 and "attachment" in reply.headers["Content-Disposition"]
        exported = await reply.read()
    assert b'"resourceType": "Questionnaire"' in exported
    await admin.get("/staff/practice/forms")
    upload = aiohttp.FormData()
    upload.add_field("csrf_token", admin.csrf)
    upload.add_field("kind", "visit")
    upload.add_field("questionnaire", exported, filename="q.json", content_type="application/json")
    async with admin.http.post(admin.base + "/staff/practice/forms/import", data=upload) as reply:
        text = await reply.text()
        assert reply.status == 200, text[text.find("error-summary") :][:800]
        assert "Questionnaire imported as a new form." in text
        assert str(reply.url) != admin.base + form_url[0]

    # Visit forms per appointment type: the page renders (types come from scheduling).
    page = await admin.get("/staff/practice/visit-forms")
    assert page.status == 200 and "Visit forms per appointment type" in page.text
