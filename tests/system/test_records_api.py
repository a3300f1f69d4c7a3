"""The records API through the real stack: medications, refill requests, documents (letters and
uploads), letter templates, profile updates and the work queue; every JSON answer checked
against the served OpenAPI document; another patient's ids are 404 on every patient route.

The stack is this module's own (private_stack): the demo seeding test gives medications to every
portal patient named Ada Lovelace, so it must be the only one in the clinic."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest

from portal.forms.v1 import forms_pb2_grpc as pb_grpc
from services.devstack import demo
from tests.system.conftest import RunningStack
from tests.system.test_api import NEW_PASSWORD, Api, unique_letters
from tests.system.test_records_pages import PNG_1x1, chart_opened, offer_refills, pdf_bytes

pytestmark = pytest.mark.private_stack

NOT_AN_ID = "not-an-id"
MISSING_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
async def forms(stack: RunningStack) -> AsyncIterator[pb_grpc.FormsServiceAsyncStub]:
    port = stack.stack.config.service_ports["forms"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield pb_grpc.FormsServiceStub(channel)


@pytest.fixture
async def api(stack: RunningStack) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, stack)


async def patient_token(api: Api, staff: str) -> tuple[str, str]:
    """A portal patient's id and API token (its password already changed)."""
    patient, issued = await api.portal_patient(staff)
    first = await api.patient_token("onsite", issued["username"], issued["password"])
    status, _, token = await api.change_password(first, issued["password"], NEW_PASSWORD)
    assert status == 204 and token
    return str(patient["id"]), token


async def upload(
    api: Api, staff: str, patient_id: str, content: bytes, name: str, mime: str, **fields: str
) -> tuple[int, Any]:
    data = aiohttp.FormData()
    data.add_field("file", content, filename=name, content_type=mime)
    for key, value in {"title": name, "category": "report", **fields}.items():
        data.add_field(key, value)
    path = f"/api/v1/patients/{patient_id}/documents"
    async with api.http.post(
        f"{api.stack.url}{path}", data=data, headers={"Authorization": f"Bearer {staff}"}
    ) as reply:
        body = await reply.json(content_type=None)
    (await api.contract()).check("POST", path, reply.status, body)
    return reply.status, body


async def content(api: Api, token: str, document_id: str) -> aiohttp.ClientResponse:
    path = f"/api/v1/portal/documents/{document_id}/content"
    async with api.http.get(
        f"{api.stack.url}{path}", headers={"Authorization": f"Bearer {token}"}
    ) as reply:
        await reply.read()
        if reply.status != 200:
            (await api.contract()).check("GET", path, reply.status, await reply.json())
        return reply


async def test_refills_documents_profile_updates_and_the_idor_matrix(
    api: Api, stack: RunningStack, forms: pb_grpc.FormsServiceAsyncStub
) -> None:
    staff = await api.staff_token()
    await offer_refills(forms)
    alice, alice_token = await patient_token(api, staff)
    _, bob_token = await patient_token(api, staff)
    await chart_opened(forms, alice)

    # Medications: staff keep them, the patient reads the current ones.
    status, med, _ = await api.call(
        "POST", f"/api/v1/patients/{alice}/medications", staff, {"name": "Lisinopril", "dose": "5"}
    )
    assert status == 201 and med["current"] is True, med
    status, body, _ = await api.call(
        "POST", f"/api/v1/patients/{MISSING_ID}/medications", staff, {"name": "X"}
    )
    assert status == 404, body
    status, body, _ = await api.call("GET", f"/api/v1/patients/{alice}/medications", staff)
    assert [m["name"] for m in body["items"]] == ["Lisinopril"]
    status, body, _ = await api.call("GET", "/api/v1/portal/medications", alice_token)
    assert status == 200 and [m["name"] for m in body["items"]] == ["Lisinopril"]
    status, body, _ = await api.call("GET", "/api/v1/portal/medications", bob_token)
    assert status == 200 and body["items"] == []

    # Refill requests: asked, listed, decided; the patient reads the answer.
    status, refill, _ = await api.call(
        "POST",
        "/api/v1/portal/refill-requests",
        alice_token,
        {"medication": "Lisinopril", "dose": "5", "quantity": "30", "pharmacy": "Main St"},
    )
    assert status == 201 and refill["status"] == "requested", refill
    status, body, _ = await api.call(
        "POST", "/api/v1/portal/refill-requests", alice_token, {"medication": "lisinopril 5"}
    )
    assert status == 409 and body["code"] == "REFILL_PENDING", body
    assert body["errors"] == {
        "medication": [
            "You already asked for a refill of Lisinopril 5; the clinic has not answered yet."
        ]
    }
    status, body, _ = await api.call("POST", "/api/v1/portal/refill-requests", alice_token, {})
    assert status == 400 and "medication" in body["errors"], body
    status, body, _ = await api.call("GET", "/api/v1/portal/refill-requests", alice_token)
    assert [r["id"] for r in body["items"]] == [refill["id"]] and body["offered"] is True
    status, body, _ = await api.call("GET", "/api/v1/portal/refill-requests", bob_token)
    assert body["items"] == []
    status, body, _ = await api.call("GET", "/api/v1/refill-requests?status=requested", staff)
    assert refill["id"] in [r["id"] for r in body["items"]]
    decision = f"/api/v1/refill-requests/{refill['id']}/decision"
    status, body, _ = await api.call("POST", decision, staff, {"decision": "denied"})
    assert status == 400 and "reason" in body["detail"], body
    status, body, _ = await api.call(
        "POST", decision, staff, {"decision": "approved", "note": "Ok"}
    )
    assert status == 200 and body["status"] == "approved", body
    status, body, _ = await api.call("POST", decision, staff, {"decision": "denied", "note": "No"})
    assert status == 409, body
    withdraw = f"/api/v1/portal/refill-requests/{refill['id']}/withdraw"
    status, body, _ = await api.call("POST", withdraw, alice_token)
    assert status == 409 and body["code"] == "NOT_PENDING", body
    status, body, _ = await api.call("GET", "/api/v1/portal/refill-requests", alice_token)
    assert body["items"][0]["status"] == "approved" and body["items"][0]["decision_note"] == "Ok"

    # A second request, withdrawn while pending.
    status, second, _ = await api.call(
        "POST", "/api/v1/portal/refill-requests", alice_token, {"medication": "Metformin"}
    )
    assert status == 201
    status, body, _ = await api.call(
        "POST", f"/api/v1/portal/refill-requests/{second['id']}/withdraw", bob_token
    )
    assert status == 404, body  # Bob cannot reach Alice's request
    status, body, _ = await api.call(
        "POST", f"/api/v1/portal/refill-requests/{second['id']}/withdraw", alice_token
    )
    assert status == 200 and body["status"] == "withdrawn", body

    # Letter templates and a letter from one, shared with the patient.
    name = "Fit note " + unique_letters()
    status, template, _ = await api.call(
        "POST",
        "/api/v1/letter-templates",
        staff,
        {"name": name, "body": "Dear {patient_name},\nsee you at {clinic_name} on {date}."},
    )
    assert status == 201, template
    status, body, _ = await api.call("GET", "/api/v1/letter-templates", staff)
    assert name in [t["name"] for t in body["items"]]
    status, letter, _ = await api.call(
        "POST",
        f"/api/v1/patients/{alice}/documents",
        staff,
        {"template_id": template["id"], "title": "Your letter", "share_with_patient": True},
    )
    assert status == 201 and letter["content_type"] == "application/pdf", letter
    assert letter["origin"] == "letter" and letter["category"] == "letter"

    # Uploads: a PDF and a PNG, sniffed; HTML, SVG and a mislabelled file are refused.
    status, report = await upload(
        api, staff, alice, pdf_bytes(), "report.pdf", "application/pdf", share_with_patient="true"
    )
    assert status == 201 and report["content_type"] == "application/pdf", report
    # A malformed multipart body (a part without headers, found by fuzzing) is a 400.
    boundary = "9cc651cd2c8d168349f50fede4c361ac"
    path = f"/api/v1/patients/{alice}/documents"
    async with api.http.post(
        f"{api.stack.url}{path}",
        data=f"--{boundary}\r\nFalse--{boundary}--\r\n".encode(),
        headers={
            "Authorization": f"Bearer {staff}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    ) as reply:
        refused = await reply.json(content_type=None)
    assert reply.status == 400, refused
    (await api.contract()).check("POST", path, reply.status, refused)
    status, image = await upload(api, staff, alice, PNG_1x1, "x.png", "image/png")
    assert (
        status == 201 and image["content_type"] == "image/png" and not image["share_with_patient"]
    )
    for content_bytes, filename, mime in (
        (b"<html><script>alert(1)</script></html>", "page.html", "text/html"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>1</script></svg>',
            "a.svg",
            "image/svg+xml",
        ),
        (b"<html><body>not a pdf</body></html>", "scan.pdf", "application/pdf"),
    ):
        status, body = await upload(api, staff, alice, content_bytes, filename, mime)
        assert status == 400 and "file" in body["errors"], (filename, body)
        assert body["errors"]["file"] == [
            "Only PDF files and PNG, JPEG, GIF or WebP images can be added."
        ], body
    status, body = await upload(
        api,
        staff,
        alice,
        b"%PDF-" + b"0" * (10 * 1024**2 + 300 * 1024),
        "big.pdf",
        "application/pdf",
    )
    assert status == 413 and "10 MiB" in body["detail"], body
    status, body, _ = await api.call(
        "POST",
        f"/api/v1/patients/{alice}/documents",
        staff,
        data="x",
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415, body

    # The patient lists and downloads what is shared; Bob reaches none of it.
    status, body, _ = await api.call("GET", "/api/v1/portal/documents", alice_token)
    listed = {d["id"] for d in body["items"]}
    assert listed == {letter["id"], report["id"]}, body
    assert set(body["items"][0]) == {"id", "title", "category", "created_at", "content_type"}
    reply = await content(api, alice_token, report["id"])
    assert reply.status == 200 and reply.content_type == "application/pdf"
    assert reply.headers["Content-Security-Policy"] == "sandbox"
    assert reply.headers["Content-Disposition"].startswith("inline")
    status, body, _ = await api.call("GET", "/api/v1/portal/documents", bob_token)
    assert body["items"] == []
    for document_id in (letter["id"], report["id"], image["id"], NOT_AN_ID, MISSING_ID):
        assert (await content(api, bob_token, document_id)).status == 404
    assert (await content(api, alice_token, image["id"])).status == 404  # not shared

    # Profile updates: proposed by the patient, decided by staff.
    status, update, _ = await api.call(
        "POST", "/api/v1/portal/profile-updates", alice_token, {"phone": "+1 555-0199"}
    )
    assert status == 201 and update["status"] == "pending", update
    assert update["proposed"]["phone"] == "+1 555-0199"
    status, body, _ = await api.call("POST", "/api/v1/portal/profile-updates", alice_token, {})
    assert status == 400, body
    status, body, _ = await api.call("GET", "/api/v1/portal/profile-updates", bob_token)
    assert body["items"] == []
    status, body, _ = await api.call("GET", "/api/v1/profile-updates?status=pending", staff)
    assert update["id"] in [u["id"] for u in body["items"]]
    path = f"/api/v1/profile-updates/{update['id']}/decision"
    status, body, _ = await api.call("POST", path, staff, {"decision": "accept"})
    assert status == 200 and body["status"] == "accepted", body
    status, body, _ = await api.call("POST", path, staff, {"decision": "reject"})
    assert status == 409, body
    status, body, _ = await api.call("GET", f"/api/v1/patients/{alice}", staff)
    assert body["phone"] == "+1 555-0199"

    # The work queue: the decided items under their statuses, filters by kind.
    status, body, _ = await api.call(
        "GET", "/api/v1/work-queue?kind=refill_request&status=approved", staff
    )
    assert status == 200 and refill["id"] in [i["id"] for i in body["items"]], body
    assert {i["kind"] for i in body["items"]} == {"refill_request"} and body["unavailable"] == []
    status, body, _ = await api.call(
        "GET", "/api/v1/work-queue?kind=profile_update&status=accepted", staff
    )
    assert update["id"] in [i["id"] for i in body["items"]]
    status, body, _ = await api.call("GET", "/api/v1/work-queue?kind=nothing", staff)
    assert status == 400, body

    # The patient routes with ids: unknown, malformed and another patient's ids are all 404.
    for token, refill_id in (
        (bob_token, refill["id"]),
        (alice_token, NOT_AN_ID),
        (alice_token, MISSING_ID),
    ):
        status, body, _ = await api.call(
            "POST", f"/api/v1/portal/refill-requests/{refill_id}/withdraw", token
        )
        assert status == 404, body
    for path in (
        f"/api/v1/refill-requests/{NOT_AN_ID}/decision",
        f"/api/v1/profile-updates/{MISSING_ID}/decision",
    ):
        status, body, _ = await api.call(
            "POST", path, staff, {"decision": "approved" if "refill" in path else "accept"}
        )
        assert status == 404, body
    # Staff routes refuse a patient's token.
    status, body, _ = await api.call("GET", "/api/v1/work-queue", alice_token)
    assert status == 401, body


async def test_the_demo_clinic_gives_its_portal_patients_current_medications(
    api: Api, stack: RunningStack, forms: pb_grpc.FormsServiceAsyncStub
) -> None:
    """`make run`'s demo data: Ada Lovelace gets her medications once (her chart opens through
    events, which seeding waits for), so Refills has something to choose from."""
    staff = await api.staff_token()
    ada = await api.new_patient(staff, first_name="Ada", last_name="Lovelace")
    status, body, _ = await api.call(
        "PATCH", f"/api/v1/patients/{ada['id']}", staff, json={"allow_patient_portal": True}
    )
    assert status == 200, body
    identity = f"127.0.0.1:{stack.stack.config.service_ports['identity']}"
    forms_address = f"127.0.0.1:{stack.stack.config.service_ports['forms']}"
    key = stack.stack.principal_key
    assert key is not None
    added = await demo.seed_medications(identity, forms_address, key)
    assert added == ["Ada Lovelace: Lisinopril, Atorvastatin"]
    assert await demo.seed_medications(identity, forms_address, key) == []  # only once
    status, body, _ = await api.call("GET", f"/api/v1/patients/{ada['id']}/medications", staff)
    assert status == 200
    assert [(m["name"], m["dose"], m["current"]) for m in body["items"]] == [
        ("Atorvastatin", "20 mg", True),
        ("Lisinopril", "10 mg", True),
    ], body
