"""Refills and Records through the real stack (processes, PostgreSQL, NATS), as browsers see
them: a patient asks for a refill, staff approve it, the patient reads the answer; staff write a
letter from a template and share it, the patient downloads it; uploads are sniffed; another
patient reaches none of it (404)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator

import aiohttp
import grpc
import pytest
from fpdf import FPDF

from portal.forms.v1 import forms_pb2 as pb
from portal.forms.v1 import forms_pb2_grpc as pb_grpc
from services.runtime.principal import Principal
from tests.conftest import principal_signer
from tests.integration.events import eventually
from tests.system.conftest import RunningStack
from tests.system.test_patient_portal import client, issue_credentials, page, submit
from tests.system.test_staff_pages import Browser

BASE = "/portal/onsite/"
NEW_PASSWORD = "Juniper-Kettle-Morning-42"
ADMIN = Principal(kind="staff", subject=str(uuid.uuid4()), role="admin", name="admin")
PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.fixture
async def forms(stack: RunningStack) -> AsyncIterator[pb_grpc.FormsServiceAsyncStub]:
    """forms over gRPC, for what no page does yet (the portal catalog) and for waiting on charts."""
    port = stack.stack.config.service_ports["forms"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.FormsServiceStub(channel)


def md() -> tuple[tuple[str, str], ...]:
    return principal_signer().metadata(ADMIN)


async def offer_refills(forms: pb_grpc.FormsServiceAsyncStub) -> None:
    listed = await forms.ListForms(pb.ListFormsRequest(kind=pb.FORM_KIND_REFILL), metadata=md())
    await forms.SetPortalForms(
        pb.SetPortalFormsRequest(form_ids=[listed.items[0].id]), metadata=md()
    )


async def chart_opened(forms: pb_grpc.FormsServiceAsyncStub, patient_id: str) -> None:
    async def probe() -> bool:
        try:
            await forms.GetChart(pb.GetChartRequest(patient_id=patient_id), metadata=md())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return True

    await eventually(probe, bool)


async def signed_in_patient(stack: RunningStack, http: aiohttp.ClientSession) -> str:
    """A new patient with portal access, signed in to the onsite portal; returns its id."""
    patient, issued = await issue_credentials(stack)
    status, _, location = await submit(
        http,
        stack,
        BASE + "login",
        BASE + "login",
        username=issued["username"],
        password=issued["password"],
    )
    assert (status, location) == (303, BASE + "password")
    status, _, location = await submit(
        http,
        stack,
        BASE + "password",
        BASE + "password",
        current_password=issued["password"],
        new_password=NEW_PASSWORD,
        confirm_password=NEW_PASSWORD,
    )
    assert status == 303, location
    return str(patient["id"])


async def staff(stack: RunningStack, http: aiohttp.ClientSession) -> Browser:
    browser = Browser(http, stack.url)
    signed = await browser.sign_in("admin", stack.admin_password)
    assert signed.status == 200, signed.text[:500]
    return browser


def pdf_bytes() -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "Report")
    return bytes(pdf.output())


async def upload(
    b: Browser, patient_id: str, content: bytes, name: str, mime: str
) -> tuple[int, str]:
    await b.get(f"/staff/patients/{patient_id}/documents/upload")
    data = aiohttp.FormData()
    data.add_field("csrf_token", b.csrf)
    data.add_field("title", "")
    data.add_field("category", "report")
    data.add_field("share_with_patient", "1")
    data.add_field("file", content, filename=name, content_type=mime)
    async with b.http.post(
        f"{b.base}/staff/patients/{patient_id}/documents/upload", data=data, allow_redirects=False
    ) as reply:
        return reply.status, await reply.text()


async def test_refill_letter_records_and_idor(
    stack: RunningStack, forms: pb_grpc.FormsServiceAsyncStub
) -> None:
    await offer_refills(forms)
    async with client() as alice_http, client() as bob_http, client() as staff_http:
        alice = await signed_in_patient(stack, alice_http)
        await signed_in_patient(stack, bob_http)
        admin = await staff(stack, staff_http)
        await chart_opened(forms, alice)

        # Staff add a current medication on the chart.
        await admin.get(f"/staff/patients/{alice}/medications/new")
        added = await admin.post(
            f"/staff/patients/{alice}/medications", {"name": "Lisinopril", "dose": "10 mg"}
        )
        assert added.status == 200 and "Medication added." in added.text
        assert "Lisinopril" in added.text

        # The patient asks for a refill of it on the Refills page.
        status, text, _ = await page(alice_http, stack.url + BASE + "refills")
        assert status == 200 and "Request a refill" in text
        med_id = re.search(r'<option value="([0-9a-f-]{36})"[^>]*>Lisinopril 10 mg<', text)
        assert med_id, text
        # Chosen from the list and typed too: which one is meant? Nothing is sent.
        both = {"medication_id": med_id[1], "medication": "Aspirin 100 mg"}
        status, text, _ = await submit(
            alice_http, stack, BASE + "refills", BASE + "refills", **both
        )
        assert status == 400 and 'href="#f-medication"' in text
        assert "type another medicine, not both." in text and "data-refill=" not in text
        status, _, location = await submit(
            alice_http,
            stack,
            BASE + "refills",
            BASE + "refills",
            medication_id=med_id[1],
            quantity="90 tablets",
            pharmacy="Main St Pharmacy",
        )
        assert (status, location) == (303, BASE + "refills?notice=refill-requested")
        status, text, _ = await page(alice_http, stack.url + BASE + "refills")
        refill_id = re.search(r'data-refill="([0-9a-f-]{36})"', text)
        assert refill_id and ">Requested<" in text and "Withdraw" in text
        # The same again while it waits: refused, at the list it was chosen from.
        status, text, _ = await submit(
            alice_http, stack, BASE + "refills", BASE + "refills", medication_id=med_id[1]
        )
        assert status == 400 and 'href="#f-medication_id"' in text
        assert "You already asked for a refill of Lisinopril 10 mg; the clinic has not" in text
        assert len(re.findall(r'data-refill="', text)) == 1

        # Staff approve it on the Refill requests page.
        listed = await admin.get(f"/staff/refills?patient_id={alice}")
        assert refill_id[1] in listed.text
        decided = await admin.post(
            f"/staff/refills/{refill_id[1]}/decision",
            {"decision": "approved", "note": "Sent to your pharmacy."},
        )
        assert decided.status == 200 and "Decision saved" in decided.text
        status, text, _ = await page(alice_http, stack.url + BASE + "refills")
        assert ">Approved<" in text and "Sent to your pharmacy." in text
        assert "Withdraw" not in text

        # A typed medicine; staff ask for an appointment; the patient is sent to Find Available.
        status, _, _ = await submit(
            alice_http, stack, BASE + "refills", BASE + "refills", medication="Metformin 500 mg"
        )
        assert status == 303
        status, text, _ = await page(alice_http, stack.url + BASE + "refills")
        second = re.search(r'data-refill="([0-9a-f-]{36})"', text)
        assert second and second[1] != refill_id[1]
        decided = await admin.post(
            f"/staff/refills/{second[1]}/decision",
            {"decision": "needs_appointment", "note": "Please come in for a review first."},
        )
        assert decided.status == 200 and "Decision saved" in decided.text
        for url in (BASE + "refills", BASE + f"refills/{second[1]}"):
            status, text, _ = await page(alice_http, stack.url + url)
            assert "Needs an appointment" in text and "Please come in for a review" in text
            assert f'href="{BASE}appointments#find-title"' in text, url
        status, text, _ = await page(alice_http, stack.url + BASE + "appointments")
        assert status == 200 and 'id="find-title"' in text

        # A third request, withdrawn by the patient while it is pending.
        status, _, _ = await submit(
            alice_http, stack, BASE + "refills", BASE + "refills", medication="Salbutamol inhaler"
        )
        assert status == 303
        status, text, _ = await page(alice_http, stack.url + BASE + "refills")
        third = re.search(r'data-refill="([0-9a-f-]{36})"', text)
        assert third and third[1] not in (refill_id[1], second[1])
        status, _, location = await submit(
            alice_http, stack, BASE + "refills", BASE + f"refills/{third[1]}/withdraw"
        )
        assert (status, location) == (303, BASE + "refills?notice=refill-withdrawn")
        status, text, _ = await page(alice_http, stack.url + BASE + f"refills/{third[1]}")
        assert "Withdrawn" in text and "Withdraw this request" not in text

        # Staff write a letter from a template and share it.
        letter_page = await admin.get(f"/staff/patients/{alice}/documents/letter")
        template = re.search(
            r'<option value="([0-9a-f-]{36})"[^>]*>Lab results are normal<', letter_page.text
        )
        assert template, letter_page.text
        preview = await admin.get(
            f"/staff/patients/{alice}/documents/letter?template_id={template[1]}"
        )
        body = re.search(r'<textarea[^>]*name="body"[^>]*>(.*?)</textarea>', preview.text, re.S)
        assert body and "Dear Grace" in html.unescape(body[1])
        saved = await admin.post(
            f"/staff/patients/{alice}/documents/letter",
            {
                "template_id": template[1],
                "title": "Your lab results",
                "body": html.unescape(body[1]),
                "share_with_patient": "1",
            },
        )
        assert saved.status == 200 and "Letter added to the chart." in saved.text

        # The patient downloads it from Records, served as a sandboxed PDF.
        status, text, _ = await page(alice_http, stack.url + BASE + "records")
        assert status == 200 and "Your lab results" in text
        link = re.search(r'href="/portal/onsite/(records/documents/[0-9a-f-]{36})"', text)
        assert link, text
        async with alice_http.get(stack.url + BASE + link[1]) as reply:
            content = await reply.read()
            assert reply.status == 200
            assert reply.headers["Content-Type"] == "application/pdf"
            assert reply.headers["Content-Security-Policy"] == "sandbox"
            assert reply.headers["X-Content-Type-Options"] == "nosniff"
            assert reply.headers["Content-Disposition"].startswith("inline;")
        assert content.startswith(b"%PDF-")

        # Uploads: the type comes from the bytes; HTML posing as PDF is refused.
        status, text = await upload(
            admin, alice, b"<html><script>alert(1)</script></html>", "scan.pdf", "application/pdf"
        )
        assert status == 400 and "Only PDF files and PNG, JPEG, GIF or WebP images" in text
        status, text = await upload(admin, alice, PNG_1x1, "photo.png", "text/html")
        assert status == 303
        status, text = await upload(
            admin, alice, pdf_bytes() + b" " * (10 * 1024 * 1024), "big.pdf", "application/pdf"
        )
        assert status == 400 and "larger than 10 MiB" in text
        status, text, _ = await page(alice_http, stack.url + BASE + "records")
        image = re.search(
            r'href="/portal/onsite/(records/documents/[0-9a-f-]{36})"[^>]*>View', text
        )
        assert image and "photo" in text

        # Bob gets 404 for every one of Alice's URLs.
        other = link[1].rsplit("/", 1)[-1]
        for path in (
            BASE + link[1],
            BASE + f"refills/{refill_id[1]}",
            BASE + f"records/forms/{refill_id[1]}",
            BASE + f"records/certificates/{refill_id[1]}",
        ):
            status, _, _ = await page(bob_http, stack.url + path)
            assert status == 404, path
        status, bob_page, _ = await page(bob_http, stack.url + BASE + "refills")
        status, _, _ = await submit(
            bob_http, stack, BASE + "refills", BASE + f"refills/{refill_id[1]}/withdraw"
        )
        assert status == 404
        # Nor can Bob ask for a refill of Alice's medication.
        status, text, _ = await submit(
            bob_http, stack, BASE + "refills", BASE + "refills", medication_id=med_id[1]
        )
        assert status == 400 and "Choose one of your current medications." in text
        assert ">Lisinopril 10 mg<" not in text  # not offered to Bob
        status, bob_records, _ = await page(bob_http, stack.url + BASE + "records")
        assert other not in bob_records and refill_id[1] not in bob_page
