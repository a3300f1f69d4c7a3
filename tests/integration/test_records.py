"""Medications, refill requests, chart documents, letters, records and the work queue: the
forms service over real gRPC against real PostgreSQL (events are read from its outbox)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from importlib import resources

import grpc
import pytest
from fpdf import FPDF

from portal.events.v1 import forms_pb2 as events_pb
from portal.forms.v1 import forms_pb2 as pb
from portal.forms.v1 import forms_pb2_grpc as pb_grpc
from services.forms import documents, library
from services.forms.servicer import FormsServicer
from services.runtime import db
from services.runtime.errors import field_errors, precondition_kind
from services.runtime.principal import Principal
from tests.conftest import principal_signer, principal_verifier
from tests.integration.test_forms import ADMIN, Forms, PNG_1x1, answers

NURSE = Principal(kind="staff", subject=str(uuid.uuid4()), role="clinician", name="nurse")
MESSAGE_BYTES = documents.GRPC_MESSAGE_BYTES + 1024 * 1024  # room for the oversize test


@pytest.fixture
async def forms(database_url: str) -> AsyncIterator[Forms]:
    """The forms service with the message size it runs with (uploads of up to 10 MiB)."""
    pool = await db.create_pool(database_url, max_size=8)
    async with pool.acquire() as conn:
        await db.migrate(
            conn,
            db.runtime_migrations()
            + db.load_migrations("forms", resources.files("services.forms") / "migrations"),
        )
        await library.seed(conn)
    options = [("grpc.max_receive_message_length", MESSAGE_BYTES)]
    server = grpc.aio.server(options=options)
    pb_grpc.add_FormsServiceServicer_to_server(FormsServicer(pool, principal_verifier()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)
    yield Forms(pb_grpc.FormsServiceStub(channel), principal_signer(), pool)
    await channel.close(grace=None)
    await server.stop(None)
    await pool.close()


async def offer_refills(forms: Forms) -> None:
    refill_form = await forms.form_id("prescription-refill-request")
    await forms.stub.SetPortalForms(
        pb.SetPortalFormsRequest(form_ids=[refill_form]), metadata=forms.md(ADMIN)
    )


async def outbox(forms: Forms, prefix: str) -> list[tuple[str, bytes]]:
    rows = await forms.pool.fetch(
        "SELECT subject, payload FROM outbox WHERE subject LIKE $1 ORDER BY seq", prefix + "%"
    )
    return [(r["subject"], bytes(r["payload"])) for r in rows]


async def audit(forms: Forms, patient_id: str) -> list[str]:
    rows = await forms.pool.fetch(
        "SELECT action FROM access_log WHERE patient_id = $1 ORDER BY id", uuid.UUID(patient_id)
    )
    return [r["action"] for r in rows]


def pdf_bytes(text: str = "Report") -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, text)
    return bytes(pdf.output())


# ---- Medications ------------------------------------------------------------------------------


async def test_staff_keep_the_medication_list_and_the_patient_reads_the_current_ones(
    forms: Forms,
) -> None:
    patient_id, patient = await forms.chart()
    added = await forms.stub.AddMedication(
        pb.AddMedicationRequest(
            patient_id=patient_id, name="Lisinopril", dose="10 mg", instructions="Once a day"
        ),
        metadata=forms.md(NURSE),
    )
    other = await forms.stub.AddMedication(
        pb.AddMedicationRequest(patient_id=patient_id, name="Atorvastatin"),
        metadata=forms.md(NURSE),
    )
    assert added.current and added.added_by.startswith("nurse")
    stopped = await forms.stub.DiscontinueMedication(
        pb.DiscontinueMedicationRequest(medication_id=other.id), metadata=forms.md(NURSE)
    )
    assert not stopped.current and stopped.HasField("discontinued_at")

    mine = await forms.stub.ListMedications(
        pb.ListMedicationsRequest(patient_id=str(uuid.uuid4()), include_discontinued=True),
        metadata=forms.md(patient),
    )
    assert [(m.name, m.dose, m.added_by) for m in mine.items] == [("Lisinopril", "10 mg", "")]
    every = await forms.stub.ListMedications(
        pb.ListMedicationsRequest(patient_id=patient_id, include_discontinued=True),
        metadata=forms.md(NURSE),
    )
    assert [m.name for m in every.items] == ["Lisinopril", "Atorvastatin"]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await forms.stub.AddMedication(
            pb.AddMedicationRequest(patient_id=patient_id, name="  "), metadata=forms.md(NURSE)
        )
    assert field_errors(refused.value) == {"name": ["Name the medication."]}
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await forms.stub.AddMedication(
            pb.AddMedicationRequest(patient_id=patient_id, name="X"), metadata=forms.md(patient)
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    subjects = [s for s, _ in await outbox(forms, "portal.forms.medication.")]
    assert subjects == [
        "portal.forms.medication.added",
        "portal.forms.medication.added",
        "portal.forms.medication.discontinued",
    ]
    assert "medications.list" in await audit(forms, patient_id)


# ---- Refill requests ------------------------------------------------------------------------


async def test_refills_are_not_offered_until_the_form_is_in_the_portal(forms: Forms) -> None:
    _, patient = await forms.chart()
    listed = await forms.stub.ListRefillRequests(
        pb.ListRefillRequestsRequest(), metadata=forms.md(patient)
    )
    assert not listed.offered
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await forms.stub.RequestRefill(
            pb.RequestRefillRequest(medication="Metformin 500 mg"), metadata=forms.md(patient)
        )
    assert precondition_kind(refused.value) == "REFILLS_NOT_OFFERED"
    await offer_refills(forms)
    listed = await forms.stub.ListRefillRequests(
        pb.ListRefillRequestsRequest(), metadata=forms.md(patient)
    )
    assert listed.offered


async def test_refill_lifecycle_with_decisions_withdrawal_and_events(forms: Forms) -> None:
    await offer_refills(forms)
    patient_id, patient = await forms.chart()
    med = await forms.stub.AddMedication(
        pb.AddMedicationRequest(patient_id=patient_id, name="Lisinopril", dose="10 mg"),
        metadata=forms.md(NURSE),
    )
    chosen = await forms.stub.RequestRefill(
        pb.RequestRefillRequest(
            medication_id=med.id, quantity="90 tablets", pharmacy="Main St Pharmacy"
        ),
        metadata=forms.md(patient),
    )
    assert (chosen.medication, chosen.dose, chosen.status) == (
        "Lisinopril",
        "10 mg",
        pb.REFILL_STATUS_REQUESTED,
    )
    # One medicine per request: chosen from the list or typed, not both.
    with pytest.raises(grpc.aio.AioRpcError) as both:
        await forms.stub.RequestRefill(
            pb.RequestRefillRequest(medication_id=med.id, medication="Aspirin 100 mg"),
            metadata=forms.md(patient),
        )
    assert field_errors(both.value) == {
        "medication": ["Choose one of your medications or type another medicine, not both."]
    }
    # The same medicine again while the clinic has not answered, chosen or typed.
    waiting = "You already asked for a refill of Lisinopril 10 mg; the clinic has not answered yet."
    for again, where in (
        (pb.RequestRefillRequest(medication_id=med.id), "medication_id"),
        (pb.RequestRefillRequest(medication=" lisinopril  10 MG"), "medication"),
        # The name alone is the same medicine too (no dose says otherwise).
        (pb.RequestRefillRequest(medication="LISINOPRIL"), "medication"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as twice:
            await forms.stub.RequestRefill(again, metadata=forms.md(patient))
        assert precondition_kind(twice.value) == "REFILL_PENDING"
        assert field_errors(twice.value) == {where: [waiting]}
    so_far = await forms.stub.ListRefillRequests(
        pb.ListRefillRequestsRequest(), metadata=forms.md(patient)
    )
    assert [r.id for r in so_far.items] == [chosen.id]  # nothing else was written
    typed = await forms.stub.RequestRefill(
        pb.RequestRefillRequest(medication="Salbutamol inhaler", note="Running low\nThanks"),
        metadata=forms.md(patient),
    )
    third = await forms.stub.RequestRefill(
        pb.RequestRefillRequest(medication="Vitamin D"), metadata=forms.md(patient)
    )

    # The request is a completed chart form of kind refill with the request as its answers.
    chart_form = await forms.stub.GetChartForm(
        pb.GetChartFormRequest(chart_form_id=chosen.id), metadata=forms.md(NURSE)
    )
    assert chart_form.summary.kind == pb.FORM_KIND_REFILL
    assert chart_form.summary.status == pb.CHART_FORM_STATUS_COMPLETED
    assert dict(chart_form.answers) == {
        "medication": "Lisinopril",
        "dose": "10 mg",
        "pharmacy": "Main St Pharmacy",
    }
    # It is answered by a decision, not by form review.
    queue = await forms.stub.ListReviewQueue(pb.ListReviewQueueRequest(), metadata=forms.md(NURSE))
    assert chosen.id not in [i.id for i in queue.items]
    with pytest.raises(grpc.aio.AioRpcError) as review:
        await forms.stub.ReviewChartForm(
            pb.ReviewChartFormRequest(chart_form_id=chosen.id, decision=pb.REVIEW_DECISION_ACCEPT),
            metadata=forms.md(NURSE),
        )
    assert precondition_kind(review.value) == "NOT_REVIEWABLE"

    # Staff see them by status, and in the work queue.
    pending = await forms.stub.ListRefillRequests(
        pb.ListRefillRequestsRequest(status=pb.REFILL_STATUS_REQUESTED), metadata=forms.md(NURSE)
    )
    assert {chosen.id, typed.id, third.id} <= {r.id for r in pending.items}
    work = await forms.stub.ListWorkQueue(
        pb.ListWorkQueueRequest(kind="refill_request"), metadata=forms.md(NURSE)
    )
    item = next(i for i in work.items if i.id == chosen.id)
    assert (item.kind, item.patient_id, item.status, item.summary) == (
        "refill_request",
        patient_id,
        "requested",
        "Refill: Lisinopril 10 mg",
    )

    # Decisions: a denial needs its reason; each one is final.
    with pytest.raises(grpc.aio.AioRpcError) as no_reason:
        await forms.stub.DecideRefillRequest(
            pb.DecideRefillRequestRequest(
                refill_request_id=typed.id, decision=pb.REFILL_STATUS_DENIED
            ),
            metadata=forms.md(NURSE),
        )
    assert list(field_errors(no_reason.value)) == ["note"]
    approved = await forms.stub.DecideRefillRequest(
        pb.DecideRefillRequestRequest(
            refill_request_id=chosen.id, decision=pb.REFILL_STATUS_APPROVED
        ),
        metadata=forms.md(NURSE),
    )
    assert approved.status == pb.REFILL_STATUS_APPROVED and approved.decided_by.startswith("nurse")
    denied = await forms.stub.DecideRefillRequest(
        pb.DecideRefillRequestRequest(
            refill_request_id=typed.id,
            decision=pb.REFILL_STATUS_DENIED,
            note="Book a review first.",
        ),
        metadata=forms.md(NURSE),
    )
    assert denied.decision_note == "Book a review first."
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await forms.stub.DecideRefillRequest(
            pb.DecideRefillRequestRequest(
                refill_request_id=chosen.id, decision=pb.REFILL_STATUS_NEEDS_APPOINTMENT
            ),
            metadata=forms.md(NURSE),
        )
    assert precondition_kind(twice.value) == "NOT_PENDING"

    # The patient withdraws the third while it is pending, and cannot withdraw a decided one.
    withdrawn = await forms.stub.WithdrawRefillRequest(
        pb.WithdrawRefillRequestRequest(refill_request_id=third.id), metadata=forms.md(patient)
    )
    assert withdrawn.status == pb.REFILL_STATUS_WITHDRAWN
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await forms.stub.WithdrawRefillRequest(
            pb.WithdrawRefillRequestRequest(refill_request_id=chosen.id), metadata=forms.md(patient)
        )
    assert precondition_kind(late.value) == "NOT_PENDING"

    mine = await forms.stub.ListRefillRequests(
        pb.ListRefillRequestsRequest(), metadata=forms.md(patient)
    )
    assert {r.id: r.status for r in mine.items} == {
        chosen.id: pb.REFILL_STATUS_APPROVED,
        typed.id: pb.REFILL_STATUS_DENIED,
        third.id: pb.REFILL_STATUS_WITHDRAWN,
    }
    assert all(r.decided_by == "" for r in mine.items)  # staff names stay with staff

    published = await outbox(forms, "portal.forms.refill.")
    assert [s.rsplit(".", 1)[-1] for s, _ in published] == [
        "requested",
        "requested",
        "requested",
        "decided",
        "decided",
        "withdrawn",
    ]
    decided = events_pb.RefillChanged.FromString(published[3][1])
    assert (decided.refill_request_id, decided.patient_id, decided.status, decided.actor_id) == (
        chosen.id,
        patient_id,
        "approved",
        NURSE.subject,
    )
    actions = await audit(forms, patient_id)
    for action in ("refill.requested", "refill.decided", "refill.withdrawn", "refills.list"):
        assert action in actions

    # Once answered (or withdrawn), the same medicine may be asked for again.
    for medication in ("Lisinopril 10 mg", "Vitamin D"):
        asked = await forms.stub.RequestRefill(
            pb.RequestRefillRequest(medication=medication), metadata=forms.md(patient)
        )
        assert asked.status == pb.REFILL_STATUS_REQUESTED
    # Another dose of a medicine whose request waits is another request.
    other_dose = await forms.stub.RequestRefill(
        pb.RequestRefillRequest(medication="Lisinopril", dose="20 mg"), metadata=forms.md(patient)
    )
    assert other_dose.status == pb.REFILL_STATUS_REQUESTED


async def test_a_patient_cannot_see_or_withdraw_another_patients_request(forms: Forms) -> None:
    await offer_refills(forms)
    owner_id, owner = await forms.chart()
    _, other = await forms.chart()
    theirs_med = await forms.stub.AddMedication(
        pb.AddMedicationRequest(patient_id=owner_id, name="Warfarin"), metadata=forms.md(NURSE)
    )
    request = await forms.stub.RequestRefill(
        pb.RequestRefillRequest(medication="Warfarin"), metadata=forms.md(owner)
    )
    for call in (
        forms.stub.GetRefillRequest(
            pb.GetRefillRequestRequest(refill_request_id=request.id), metadata=forms.md(other)
        ),
        forms.stub.WithdrawRefillRequest(
            pb.WithdrawRefillRequestRequest(refill_request_id=request.id), metadata=forms.md(other)
        ),
        forms.stub.GetRefillRequest(
            pb.GetRefillRequestRequest(refill_request_id="not-an-id"), metadata=forms.md(other)
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await call
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    # Another patient's medication cannot be chosen either.
    with pytest.raises(grpc.aio.AioRpcError) as chosen:
        await forms.stub.RequestRefill(
            pb.RequestRefillRequest(medication_id=theirs_med.id), metadata=forms.md(other)
        )
    assert list(field_errors(chosen.value)) == ["medication_id"]
    # The patient id in a request is ignored: a patient lists their own.
    listed = await forms.stub.ListRefillRequests(
        pb.ListRefillRequestsRequest(patient_id=owner_id), metadata=forms.md(other)
    )
    assert list(listed.items) == []
    still = await forms.stub.GetRefillRequest(
        pb.GetRefillRequestRequest(refill_request_id=request.id), metadata=forms.md(owner)
    )
    assert still.status == pb.REFILL_STATUS_REQUESTED


# ---- Documents ------------------------------------------------------------------------------


async def upload(forms: Forms, patient_id: str, content: bytes, **fields: object) -> pb.Document:
    given: dict[str, object] = {
        "title": "Scan",
        "category": pb.DOCUMENT_CATEGORY_REPORT,
        **fields,
    }
    return await forms.stub.UploadDocument(
        pb.UploadDocumentRequest(patient_id=patient_id, content=content, **given),  # type: ignore[arg-type]
        metadata=forms.md(NURSE),
    )


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (b"<!DOCTYPE html><html><script>alert(1)</script></html>", "report.pdf"),
        (b"%PDF-1.7\n<html><script>alert(1)</script></html>", "report.pdf"),
        (
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
            b"<script>alert(1)</script></svg>",
            "scan.png",
        ),
        (b"<svg onload=alert(1)>", "scan.svg"),
        (b"MZ\x90\x00 executable", "scan.jpg"),
    ],
    ids=["html-as-pdf", "pdf-header-html", "svg-as-png", "svg", "executable"],
)
async def test_uploads_are_sniffed_and_anything_but_pdf_or_image_is_refused(
    forms: Forms, content: bytes, filename: str
) -> None:
    patient_id, _ = await forms.chart()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await upload(forms, patient_id, content, filename=filename)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(refused.value) == {
        "content": ["Only PDF files and PNG, JPEG, GIF or WebP images can be added."]
    }
    assert await forms.pool.fetchval("SELECT count(*) FROM documents") == 0


async def test_an_oversized_upload_is_refused(forms: Forms) -> None:
    patient_id, _ = await forms.chart()
    big = pdf_bytes()
    big = big[:-6] + b" " * (documents.MAX_BYTES + 1 - len(big)) + big[-6:]
    assert len(big) == documents.MAX_BYTES + 1
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await upload(forms, patient_id, big)
    assert field_errors(refused.value) == {"content": ["The file is larger than 10 MiB."]}


async def test_real_pdf_and_png_are_kept_with_their_sha256_and_shared_on_request(
    forms: Forms,
) -> None:
    patient_id, patient = await forms.chart()
    pdf = pdf_bytes("Discharge summary")
    kept = await upload(forms, patient_id, pdf, title="Discharge summary", filename="x.html")
    assert (kept.content_type, kept.size, kept.sha256) == (
        "application/pdf",
        len(pdf),
        hashlib.sha256(pdf).hexdigest(),
    )
    assert kept.filename == "Discharge summary.pdf"  # from the title and the sniffed type
    image = await upload(
        forms,
        patient_id,
        PNG_1x1,
        title="",
        filename="wound photo.png",
        category=pb.DOCUMENT_CATEGORY_RECORD,
        share_with_patient=True,
    )
    assert (image.content_type, image.title) == ("image/png", "wound photo")
    stored = await forms.pool.fetchrow(
        "SELECT sha256, content FROM documents WHERE id = $1", uuid.UUID(kept.id)
    )
    assert stored is not None
    assert stored["sha256"] == hashlib.sha256(bytes(stored["content"])).hexdigest()

    # The patient sees only what is shared with them.
    mine = await forms.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=forms.md(patient))
    assert [d.id for d in mine.items] == [image.id]
    with pytest.raises(grpc.aio.AioRpcError) as hidden:
        await forms.stub.GetDocumentContent(
            pb.GetDocumentContentRequest(document_id=kept.id), metadata=forms.md(patient)
        )
    assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
    await forms.stub.SetDocumentSharing(
        pb.SetDocumentSharingRequest(document_id=kept.id, share_with_patient=True),
        metadata=forms.md(NURSE),
    )
    content = await forms.stub.GetDocumentContent(
        pb.GetDocumentContentRequest(document_id=kept.id), metadata=forms.md(patient)
    )
    assert (content.content, content.content_type) == (pdf, "application/pdf")
    assert "document.downloaded" in await audit(forms, patient_id)
    subjects = [s for s, _ in await outbox(forms, "portal.forms.document.")]
    assert subjects == ["portal.forms.document.added"] * 2 + ["portal.forms.document.shared"]

    # Another patient never reaches it.
    _, other = await forms.chart()
    with pytest.raises(grpc.aio.AioRpcError) as idor:
        await forms.stub.GetDocumentContent(
            pb.GetDocumentContentRequest(document_id=kept.id), metadata=forms.md(other)
        )
    assert idor.value.code() == grpc.StatusCode.NOT_FOUND
    theirs = await forms.stub.ListDocuments(
        pb.ListDocumentsRequest(patient_id=patient_id), metadata=forms.md(other)
    )
    assert list(theirs.items) == []


# ---- Letters ----------------------------------------------------------------------------------


async def test_a_letter_from_a_template_is_merged_safely_and_kept_as_text_and_pdf(
    forms: Forms,
) -> None:
    patient_id, patient = await forms.chart()
    templates = await forms.stub.ListLetterTemplates(
        pb.ListLetterTemplatesRequest(), metadata=forms.md(NURSE)
    )
    assert {"Return to work/school", "Lab results are normal"} <= {t.name for t in templates.items}
    made = await forms.stub.CreateLetterTemplate(
        pb.CreateLetterTemplateRequest(
            name="Thanks " + uuid.uuid4().hex[:6],
            title="A note for {patient_name}",
            body="Dear {patient_name},\n\n{{not a field}} from {clinic_name} on {date}.",
        ),
        metadata=forms.md(NURSE),
    )
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await forms.stub.CreateLetterTemplate(
            pb.CreateLetterTemplateRequest(name="Bad", body="Hello {patient.__class__}"),
            metadata=forms.md(NURSE),
        )
    assert "Unknown merge field" in field_errors(unknown.value)["body"][0]

    # A name that looks like a field or a format string is printed as it is.
    merge = pb.LetterMerge(
        patient_name="Zoë {clinic_name} {0.__class__}", clinic_name="Elm Clinic", date="May 2, 2025"
    )
    preview = await forms.stub.PreviewLetter(
        pb.PreviewLetterRequest(patient_id=patient_id, template_id=made.id, merge=merge),
        metadata=forms.md(NURSE),
    )
    assert preview.body == (
        "Dear Zoë {clinic_name} {0.__class__},\n\n{not a field} from Elm Clinic on May 2, 2025."
    )
    letter = await forms.stub.CreateLetter(
        pb.CreateLetterRequest(
            patient_id=patient_id,
            template_id=made.id,
            merge=merge,
            share_with_patient=True,
        ),
        metadata=forms.md(NURSE),
    )
    assert letter.title == "A note for Zoë {clinic_name} {0.__class__}"
    assert (letter.category, letter.origin, letter.content_type) == (
        pb.DOCUMENT_CATEGORY_LETTER,
        "letter",
        "application/pdf",
    )
    assert letter.body == preview.body
    content = await forms.stub.GetDocumentContent(
        pb.GetDocumentContentRequest(document_id=letter.id), metadata=forms.md(patient)
    )
    assert content.content.startswith(b"%PDF-")
    assert hashlib.sha256(content.content).hexdigest() == letter.sha256 == content.sha256
    assert b"DejaVu" in content.content  # the Unicode font is embedded: "Zoë" prints as typed

    # The writer's own text replaces the template's; its fields are filled in too.
    edited = await forms.stub.CreateLetter(
        pb.CreateLetterRequest(
            patient_id=patient_id,
            template_id=made.id,
            title="Edited",
            body="Hello {patient_name}, see you soon.",
            merge=merge,
        ),
        metadata=forms.md(NURSE),
    )
    assert edited.body == "Hello Zoë {clinic_name} {0.__class__}, see you soon."
    mine = await forms.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=forms.md(patient))
    assert [d.id for d in mine.items] == [letter.id]
    assert mine.items[0].body == ""  # the patient reads the PDF


# ---- Records and the work queue -----------------------------------------------------------------


async def test_records_list_shared_documents_and_completed_forms_newest_first(
    forms: Forms,
) -> None:
    await offer_refills(forms)
    patient_id, patient = await forms.chart()
    consent = await forms.assign(patient_id, "consent-to-treatment")
    await forms.stub.SaveAnswers(
        pb.SaveAnswersRequest(chart_form_id=consent.summary.id, answers=answers(consent=True)),
        metadata=forms.md(patient),
    )
    await forms.stub.SignChartForm(
        pb.SignChartFormRequest(
            chart_form_id=consent.summary.id,
            typed_name="Ada Lovelace",
            agree_to_electronic_signature=True,
        ),
        metadata=forms.md(patient),
    )
    allergies = await forms.assign(patient_id, "allergies")
    await forms.assign(patient_id, "phq-9")  # not started: not a record
    await forms.stub.RequestRefill(
        pb.RequestRefillRequest(medication="Metformin"), metadata=forms.md(patient)
    )
    shared = await upload(forms, patient_id, pdf_bytes(), share_with_patient=True)
    await upload(forms, patient_id, pdf_bytes(), title="Internal")
    listed = await forms.stub.ListRecords(pb.ListRecordsRequest(), metadata=forms.md(patient))
    assert [(r.kind, r.id) for r in listed.items] == [
        ("document", shared.id),
        ("certificate", consent.summary.id),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as not_done:
        await forms.stub.GetChartFormPdf(
            pb.GetChartFormPdfRequest(chart_form_id=allergies.summary.id),
            metadata=forms.md(patient),
        )
    assert precondition_kind(not_done.value) == "NOT_COMPLETED"
    form_pdf = await forms.stub.GetChartFormPdf(
        pb.GetChartFormPdfRequest(chart_form_id=consent.summary.id), metadata=forms.md(patient)
    )
    assert form_pdf.content.startswith(b"%PDF-")
    _, other = await forms.chart()
    with pytest.raises(grpc.aio.AioRpcError) as idor:
        await forms.stub.GetChartFormPdf(
            pb.GetChartFormPdfRequest(chart_form_id=consent.summary.id), metadata=forms.md(other)
        )
    assert idor.value.code() == grpc.StatusCode.NOT_FOUND

    work = await forms.stub.ListWorkQueue(pb.ListWorkQueueRequest(), metadata=forms.md(NURSE))
    mine = [(i.kind, i.status) for i in work.items if i.patient_id == patient_id]
    assert mine == [("refill_request", "requested"), ("form_review", "signed")]
    # The badge's count: every item, none of their data; the list names its patients in the log.
    counted = await forms.stub.ListWorkQueue(
        pb.ListWorkQueueRequest(count_only=True), metadata=forms.md(NURSE)
    )
    assert (list(counted.items), counted.total) == ([], work.total)
    assert work.total == len(work.items) >= 2
    logged = await forms.pool.fetchval(
        "SELECT detail FROM access_log WHERE action = 'work_queue.list' ORDER BY id DESC LIMIT 1"
    )
    assert patient_id in logged.split(",")
    with pytest.raises(grpc.aio.AioRpcError) as bad_kind:
        await forms.stub.ListWorkQueue(pb.ListWorkQueueRequest(kind="x"), metadata=forms.md(NURSE))
    assert bad_kind.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as patients_not:
        await forms.stub.ListWorkQueue(pb.ListWorkQueueRequest(), metadata=forms.md(patient))
    assert patients_not.value.code() == grpc.StatusCode.PERMISSION_DENIED
