"""FormsService, records part: current medications, chart documents, letters and templates,
and what a patient reads in Records."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import grpc

from portal.forms.v1 import forms_pb2 as pb
from services.forms import (
    access,
    catalog,
    certificate,
    documents,
    letter_pdf,
    letter_templates,
    medications,
    records,
    records_events,
    signatures,
)
from services.forms.chart_forms import DONE, answers_of
from services.forms.convert import timestamp
from services.forms.records_convert import CATEGORY_NAMES, document, medication, template
from services.forms.rpc_common import NO_CHART, STAFF, Context, ServicerBase, parse_id
from services.runtime.db import Conn
from services.runtime.errors import abort_invalid, abort_precondition
from services.runtime.fonts import FontsMissing
from services.runtime.principal import Principal, requires
from services.runtime.text import TextError, clean

NO_DOCUMENT = "No such document."
NO_MEDICATION = "No such medication."
NO_TEMPLATE = "No such letter template."


def long_date(day: datetime) -> str:
    return f"{day:%B} {day.day}, {day.year}"


class RecordsRpc(ServicerBase):
    async def open_chart(self, conn: Conn, context: Context, patient_id: uuid.UUID) -> None:
        if not await conn.fetchval("SELECT true FROM charts WHERE patient_id = $1", patient_id):
            await context.abort(grpc.StatusCode.NOT_FOUND, NO_CHART)

    # ---- Medications -------------------------------------------------------------------------

    @requires(staff=STAFF, patient=True)
    async def ListMedications(
        self, request: pb.ListMedicationsRequest, context: Context, principal: Principal
    ) -> pb.ListMedicationsResponse:
        patient_id = await self.patient_of(context, principal, request.patient_id)
        staff = not principal.is_patient
        async with self.pool.acquire() as conn:
            rows = await medications.list_for_patient(
                conn, patient_id, include_discontinued=staff and request.include_discontinued
            )
            await access.record(conn, principal, "medications.list", patient_id)
        return pb.ListMedicationsResponse(items=[medication(r, staff=staff) for r in rows])

    @requires(staff=STAFF)
    async def AddMedication(
        self, request: pb.AddMedicationRequest, context: Context, principal: Principal
    ) -> pb.Medication:
        patient_id = await parse_id(context, request.patient_id, "patient_id")
        new, errors = medications.validate(request.name, request.dose, request.instructions)
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            await self.open_chart(conn, context, patient_id)
            row = await medications.add(conn, patient_id, new, access.actor(principal))
            await access.record(
                conn, principal, "medication.added", patient_id, detail=str(row["id"])
            )
            await records_events.medication(conn, "added", row, principal.subject)
        return medication(row, staff=True)

    @requires(staff=STAFF)
    async def DiscontinueMedication(
        self, request: pb.DiscontinueMedicationRequest, context: Context, principal: Principal
    ) -> pb.Medication:
        medication_id = await self._id(context, request.medication_id, NO_MEDICATION)
        async with self.pool.acquire() as conn, conn.transaction():
            before = await medications.get(conn, medication_id)
            if before is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, NO_MEDICATION)
            row = await medications.discontinue(conn, medication_id, access.actor(principal))
            if row is None:
                raise LookupError(medication_id)
            if before["discontinued_at"] is None:
                await access.record(
                    conn,
                    principal,
                    "medication.discontinued",
                    row["patient_id"],
                    detail=str(row["id"]),
                )
                await records_events.medication(conn, "discontinued", row, principal.subject)
        return medication(row, staff=True)

    # ---- Documents ---------------------------------------------------------------------------

    @requires(staff=STAFF, patient=True)
    async def ListDocuments(
        self, request: pb.ListDocumentsRequest, context: Context, principal: Principal
    ) -> pb.ListDocumentsResponse:
        patient_id = await self.patient_of(context, principal, request.patient_id)
        staff = not principal.is_patient
        async with self.pool.acquire() as conn:
            rows = await documents.list_for_patient(conn, patient_id, shared_only=not staff)
            await access.record(conn, principal, "documents.list", patient_id)
        return pb.ListDocumentsResponse(items=[document(r, staff=staff) for r in rows])

    @requires(staff=STAFF)
    async def UploadDocument(
        self, request: pb.UploadDocumentRequest, context: Context, principal: Principal
    ) -> pb.Document:
        patient_id = await parse_id(context, request.patient_id, "patient_id")
        errors: dict[str, list[str]] = {}
        content_type = documents.check_content(request.content, errors)
        fallback = request.filename.rsplit(".", 1)[0] if request.filename else ""
        title = documents.check_title(request.title or fallback, errors)
        category = CATEGORY_NAMES.get(request.category, "")
        if not category:
            errors["category"] = ["Choose letter, report or record."]
        if errors:
            await abort_invalid(context, errors, errors.get("content", ["Check the form."])[0])
        new = documents.New(
            patient_id=patient_id,
            category=category,
            title=title,
            origin="upload",
            content_type=content_type,
            content=request.content,
            filename="",
            share_with_patient=request.share_with_patient,
            created_by=access.actor(principal),
        )
        return await self._add(context, principal, new)

    async def _add(self, context: Context, principal: Principal, new: documents.New) -> pb.Document:
        async with self.pool.acquire() as conn, conn.transaction():
            await self.open_chart(conn, context, new.patient_id)
            row = await documents.insert(conn, new)
            await access.record(
                conn,
                principal,
                "document.added",
                new.patient_id,
                document_id=row["id"],
                detail=f"sha256={row['sha256']} type={row['content_type']}",
            )
            await records_events.document(conn, "added", row, principal.subject)
        return document(row, staff=True)

    @requires(staff=STAFF)
    async def PreviewLetter(
        self, request: pb.PreviewLetterRequest, context: Context, principal: Principal
    ) -> pb.LetterPreview:
        template_id = await parse_id(context, request.template_id, "template_id")
        async with self.pool.acquire() as conn:
            row = await letter_templates.get(conn, template_id)
        if row is None:
            await abort_invalid(context, {"template_id": [NO_TEMPLATE]})
        values = self._merge(request.merge)
        return pb.LetterPreview(
            title=letter_templates.merge(row["title"], values),
            body=letter_templates.merge(row["body"], values),
        )

    def _merge(self, given: pb.LetterMerge) -> letter_templates.Merge:
        return letter_templates.Merge(
            patient_name=" ".join(given.patient_name.split()),
            date=given.date.strip() or long_date(datetime.now(UTC)),
            clinic_name=" ".join(given.clinic_name.split()),
        )

    @requires(staff=STAFF)
    async def CreateLetter(
        self, request: pb.CreateLetterRequest, context: Context, principal: Principal
    ) -> pb.Document:
        patient_id = await parse_id(context, request.patient_id, "patient_id")
        template_id = await parse_id(context, request.template_id, "template_id")
        async with self.pool.acquire() as conn:
            found = await letter_templates.get(conn, template_id)
        if found is None:
            await abort_invalid(context, {"template_id": [NO_TEMPLATE]})
        errors: dict[str, list[str]] = {}
        values = self._merge(request.merge)
        raw_body = request.body or found["body"]
        body = ""
        try:
            body = clean(raw_body, multiline=True).strip()
            letter_templates.check(body)
        except (TextError, letter_templates.MergeError) as exc:
            errors["body"] = [str(exc)]
        if not body and "body" not in errors:
            errors["body"] = ["The letter is empty."]
        elif len(body) > letter_templates.MAX_BODY:
            errors["body"] = [f"Must be at most {letter_templates.MAX_BODY} characters."]
        merged_title = letter_templates.merge(request.title or found["title"], values)
        title = documents.check_title(merged_title, errors)
        category = CATEGORY_NAMES.get(request.category, "letter")
        if errors:
            await abort_invalid(context, errors)
        text = letter_templates.merge(body, values)
        created = datetime.now(UTC)
        try:
            pdf = await asyncio.to_thread(
                letter_pdf.render, values.clinic_name, title, text, created
            )
        except FontsMissing as missing:
            await abort_precondition(context, "FONTS_MISSING", str(missing))
        new = documents.New(
            patient_id=patient_id,
            category=category,
            title=title,
            origin="letter",
            content_type="application/pdf",
            content=pdf,
            filename="",
            share_with_patient=request.share_with_patient,
            created_by=access.actor(principal),
            body=text,
            template_id=template_id,
        )
        return await self._add(context, principal, new)

    @requires(staff=STAFF)
    async def SetDocumentSharing(
        self, request: pb.SetDocumentSharingRequest, context: Context, principal: Principal
    ) -> pb.Document:
        document_id = await self._id(context, request.document_id, NO_DOCUMENT)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await documents.set_sharing(conn, document_id, request.share_with_patient)
            if row is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, NO_DOCUMENT)
            event = "shared" if request.share_with_patient else "unshared"
            await access.record(
                conn, principal, f"document.{event}", row["patient_id"], document_id=row["id"]
            )
            await records_events.document(conn, event, row, principal.subject)
        return document(row, staff=True)

    @requires(staff=STAFF, patient=True)
    async def GetDocumentContent(
        self, request: pb.GetDocumentContentRequest, context: Context, principal: Principal
    ) -> pb.DocumentContent:
        document_id = await self._id(context, request.document_id, NO_DOCUMENT)
        owner = uuid.UUID(principal.subject) if principal.is_patient else None
        async with self.pool.acquire() as conn:
            row = await documents.get(conn, document_id, patient_id=owner, content=True)
            if row is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, NO_DOCUMENT)
            await access.record(
                conn, principal, "document.downloaded", row["patient_id"], document_id=row["id"]
            )
        return pb.DocumentContent(
            content=bytes(row["content"]),
            content_type=row["content_type"],
            filename=row["filename"],
            sha256=row["sha256"],
        )

    async def _id(self, context: Context, raw: str, not_found: str) -> uuid.UUID:
        """An id from the request; one that cannot exist is NOT_FOUND, like an unknown one."""
        try:
            return uuid.UUID(raw)
        except ValueError:
            await context.abort(grpc.StatusCode.NOT_FOUND, not_found)

    # ---- Letter templates --------------------------------------------------------------------

    @requires(staff=STAFF)
    async def ListLetterTemplates(
        self, request: pb.ListLetterTemplatesRequest, context: Context, principal: Principal
    ) -> pb.ListLetterTemplatesResponse:
        async with self.pool.acquire() as conn:
            rows = await letter_templates.list_all(conn)
        return pb.ListLetterTemplatesResponse(items=[template(r) for r in rows])

    @requires(staff=STAFF)
    async def CreateLetterTemplate(
        self, request: pb.CreateLetterTemplateRequest, context: Context, principal: Principal
    ) -> pb.LetterTemplate:
        draft, errors = letter_templates.validate(request.name, request.title, request.body)
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn:
            row = await letter_templates.create(conn, draft, access.actor(principal))
        if row is None:
            await abort_invalid(context, {"name": ["A template of this name exists."]})
        return template(row)

    # ---- Records -----------------------------------------------------------------------------

    @requires(staff=STAFF, patient=True)
    async def ListRecords(
        self, request: pb.ListRecordsRequest, context: Context, principal: Principal
    ) -> pb.ListRecordsResponse:
        patient_id = await self.patient_of(context, principal, request.patient_id)
        async with self.pool.acquire() as conn:
            found = await records.list_for_patient(
                conn, patient_id, shared_only=principal.is_patient
            )
            await access.record(conn, principal, "records.list", patient_id)
        return pb.ListRecordsResponse(
            items=[
                pb.Record(
                    kind=r.kind,
                    id=r.id,
                    title=r.title,
                    category=r.category,
                    content_type=r.content_type,
                    created_at=timestamp(r.created_at),
                )
                for r in found
            ]
        )

    @requires(staff=STAFF, patient=True)
    async def GetChartFormPdf(
        self, request: pb.GetChartFormPdfRequest, context: Context, principal: Principal
    ) -> pb.DocumentContent:
        async with self.pool.acquire() as conn:
            row = await self.chart_form(conn, context, principal, request.chart_form_id)
            if row["status"] not in DONE or row["submitted_at"] is None:
                await abort_precondition(
                    context, "NOT_COMPLETED", "This form has not been completed yet."
                )
            await self.audit(conn, principal, "chart_form.downloaded", row)
            form = await catalog.get_form(conn, row["form_id"], row["form_version"])
            if form is None:
                raise LookupError(row["form_id"])
        try:
            pdf = await asyncio.to_thread(
                certificate.render_form,
                catalog.definition(form),
                answers_of(row),
                row["submitted_at"],
            )
        except FontsMissing as missing:
            await abort_precondition(context, "FONTS_MISSING", str(missing))
        return pb.DocumentContent(
            content=pdf,
            content_type="application/pdf",
            filename=f"form-{row['id']}.pdf",
            sha256=signatures.sha256(pdf),
        )
