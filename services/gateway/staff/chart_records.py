"""The chart's records sections: Medications, Documents (upload, letter from a template, share,
download) and the patient's refill requests. forms owns all of it; a forms outage leaves these
sections out and the rest of the chart renders.

Uploads: the page's limit is 10 MiB per file. aiohttp reads a form body only up to the app's
client_max_size (1 MiB), so `upload_body_limit` raises it for the upload route alone.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import grpc
from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.backends import PDF_DEADLINE, Outage, section
from services.gateway.clinic_time import day_month_year
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.records_view import (
    CATEGORY,
    CATEGORY_BY_NAME,
    document_response,
    refill_status,
)

# A module import: the chart (patients.py) composes these sections, so names resolve late.
from services.gateway.staff import patients
from services.gateway.staff.common import (
    checked,
    form,
    format_when,
    invalid,
    patient_id,
    redirect,
    render,
    staff_page,
    when,
)
from services.runtime.errors import FieldErrors, precondition_text

MAX_FILE_BYTES = 10 * 1024 * 1024
UPLOAD_BODY_BYTES = MAX_FILE_BYTES + 256 * 1024  # the file plus the form's other fields
TOO_LARGE = "The file is larger than 10 MiB; nothing was added."
UPLOAD_PATH = re.compile(r"^/staff/patients/[^/]+/documents/upload$")
CATEGORIES = [(name, label) for name, label in CATEGORY.values()]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def upload_body_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A larger body for the document upload route only (before CSRF reads the form)."""
    if request.method != "POST" or not UPLOAD_PATH.match(request.path):
        return await handler(request)
    try:
        return await handler(request.clone(client_max_size=UPLOAD_BODY_BYTES))
    except web.HTTPRequestEntityTooLarge:
        # aiohttp's text names byte counts; the page says it in words.
        raise web.HTTPRequestEntityTooLarge(
            UPLOAD_BODY_BYTES, request.content_length or 0, text=TOO_LARGE
        ) from None


# --- The chart's sections ---------------------------------------------------------------------


async def chart_sections(request: web.Request, caller: Caller, pid: str) -> dict[str, Any]:
    """Context for staff/_chart_records.html: the lists, or the forms outage in their place."""
    forms = request.app[BACKENDS].forms
    md = auth.metadata(request, caller)
    meds, docs, refills = await asyncio.gather(
        section(
            forms.ListMedications(
                pb.ListMedicationsRequest(patient_id=pid, include_discontinued=True), metadata=md
            )
        ),
        section(forms.ListDocuments(pb.ListDocumentsRequest(patient_id=pid), metadata=md)),
        section(
            forms.ListRefillRequests(pb.ListRefillRequestsRequest(patient_id=pid), metadata=md)
        ),
    )
    if isinstance(meds, Outage) or isinstance(docs, Outage) or isinstance(refills, Outage):
        return {"records_unavailable": Outage("forms").message}
    zone = request.app[SETTINGS].clinic_timezone
    return {
        "records_unavailable": "",
        "medications": list(meds.items),
        "documents": [_document(d, zone) for d in docs.items],
        "refills": [_refill(r, zone) for r in refills.items],
    }


def _document(d: pb.Document, zone: Any) -> dict[str, Any]:
    return {
        "id": d.id,
        "title": d.title,
        "category": CATEGORY.get(d.category, ("", ""))[1],
        "origin": "Letter" if d.origin == "letter" else "Upload",
        "content_type": d.content_type,
        "size_kib": max(1, d.size // 1024),
        "sha256": d.sha256,
        "shared": d.share_with_patient,
        "created": format_when(when(d.created_at), zone),
        "created_by": d.created_by,
    }


def _refill(r: pb.RefillRequest, zone: Any) -> dict[str, Any]:
    name, label, level = refill_status(r.status)
    return {
        "id": r.id,
        "medication": " ".join(p for p in (r.medication, r.dose) if p),
        "status": name,
        "status_label": label,
        "level": level,
        "requested": format_when(when(r.requested_at), zone),
        "answer": r.decision_note,
    }


# --- Medications --------------------------------------------------------------------------------


@staff_page
async def add_medication(request: web.Request, caller: Caller) -> web.StreamResponse:
    pid = patient_id(request)
    values, bad = await form(request)
    fields = {k: values.get(k, "") for k in ("name", "dose", "instructions")}
    if not bad:
        try:
            await request.app[BACKENDS].forms.AddMedication(
                pb.AddMedicationRequest(patient_id=pid, **fields),
                metadata=auth.metadata(request, caller),
            )
        except grpc.aio.AioRpcError as exc:
            bad = _refused(exc)
    if bad:
        return await _form_page(request, caller, "medication", fields, bad)
    return redirect(request, f"/staff/patients/{pid}#medications-title", flash="medication-added")


@staff_page
async def medication_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _form_page(request, caller, "medication", {}, {}, status=200)


@staff_page
async def discontinue_medication(request: web.Request, caller: Caller) -> web.StreamResponse:
    pid = patient_id(request)
    await _call_or_404(
        request.app[BACKENDS].forms.DiscontinueMedication(
            pb.DiscontinueMedicationRequest(medication_id=request.match_info["medication_id"]),
            metadata=auth.metadata(request, caller),
        )
    )
    return redirect(
        request, f"/staff/patients/{pid}#medications-title", flash="medication-discontinued"
    )


# --- Documents ----------------------------------------------------------------------------------


@staff_page
async def upload_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _form_page(request, caller, "upload", {"category": "report"}, {}, status=200)


@staff_page
async def upload(request: web.Request, caller: Caller) -> web.StreamResponse:
    pid = patient_id(request)
    values, bad = await form(request)
    fields = {k: values.get(k, "") for k in ("title", "category")}
    fields["share_with_patient"] = "1" if checked(values, "share_with_patient") else ""
    posted = (await request.post()).get("file")
    content = b""
    filename = ""
    if isinstance(posted, web.FileField):
        content = await asyncio.to_thread(posted.file.read, MAX_FILE_BYTES + 1)
        filename = posted.filename or ""
    if not content:
        bad["file"] = ["Choose a PDF or image file to upload."]
    elif len(content) > MAX_FILE_BYTES:
        bad["file"] = [TOO_LARGE]
    if not bad:
        try:
            await request.app[BACKENDS].forms.UploadDocument(
                pb.UploadDocumentRequest(
                    patient_id=pid,
                    title=fields["title"],
                    category=CATEGORY_BY_NAME.get(
                        fields["category"], pb.DOCUMENT_CATEGORY_UNSPECIFIED
                    ),
                    share_with_patient=bool(fields["share_with_patient"]),
                    content=content,
                    filename=filename,
                ),
                metadata=auth.metadata(request, caller),
            )
        except grpc.aio.AioRpcError as exc:
            bad = _refused(exc)
            if "content" in bad:
                bad["file"] = bad.pop("content")
    if bad:
        return await _form_page(request, caller, "upload", fields, bad)
    return redirect(request, f"/staff/patients/{pid}#documents-title", flash="document-added")


async def _merge(request: web.Request, patient: Any) -> pb.LetterMerge:
    settings = request.app[SETTINGS]
    today = datetime.now(settings.clinic_timezone)
    return pb.LetterMerge(
        patient_name=patients.full_name(patient),
        clinic_name=settings.clinic_name,
        date=day_month_year(today.date()),
    )


@staff_page
async def letter_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    """Choose a template; with one chosen, its text with the merge fields filled in."""
    pid = patient_id(request)
    template_id = request.query.get("template_id", "")
    values: dict[str, str] = {"template_id": template_id, "share_with_patient": ""}
    errors: FieldErrors = {}
    if template_id:
        patient = await patients.fetch_patient(request, caller)
        try:
            preview = await request.app[BACKENDS].forms.PreviewLetter(
                pb.PreviewLetterRequest(
                    patient_id=pid, template_id=template_id, merge=await _merge(request, patient)
                ),
                metadata=auth.metadata(request, caller),
            )
            values.update(title=preview.title, body=preview.body)
        except grpc.aio.AioRpcError as exc:
            errors = _refused(exc)
    return await _form_page(request, caller, "letter", values, errors, status=200)


@staff_page
async def create_letter(request: web.Request, caller: Caller) -> web.StreamResponse:
    pid = patient_id(request)
    posted, bad = await form(request)
    values = {k: posted.get(k, "") for k in ("template_id", "title", "body")}
    values["share_with_patient"] = "1" if checked(posted, "share_with_patient") else ""
    if not bad:
        patient = await patients.fetch_patient(request, caller)
        try:
            await request.app[BACKENDS].forms.CreateLetter(
                pb.CreateLetterRequest(
                    patient_id=pid,
                    template_id=values["template_id"],
                    title=values["title"],
                    body=values["body"],
                    merge=await _merge(request, patient),
                    share_with_patient=bool(values["share_with_patient"]),
                ),
                metadata=auth.metadata(request, caller),
                timeout=PDF_DEADLINE,
            )
        except grpc.aio.AioRpcError as exc:
            bad = _refused(exc)
    if bad:
        return await _form_page(request, caller, "letter", values, bad)
    return redirect(request, f"/staff/patients/{pid}#documents-title", flash="letter-added")


@staff_page
async def share(request: web.Request, caller: Caller) -> web.StreamResponse:
    pid = patient_id(request)
    values, _ = await form(request)
    on = checked(values, "share_with_patient")
    await _call_or_404(
        request.app[BACKENDS].forms.SetDocumentSharing(
            pb.SetDocumentSharingRequest(
                document_id=request.match_info["document_id"], share_with_patient=on
            ),
            metadata=auth.metadata(request, caller),
        )
    )
    flash = "document-shared" if on else "document-unshared"
    return redirect(request, f"/staff/patients/{pid}#documents-title", flash=flash)


@staff_page
async def download(request: web.Request, caller: Caller) -> web.StreamResponse:
    patient_id(request)
    found = await _call_or_404(
        request.app[BACKENDS].forms.GetDocumentContent(
            pb.GetDocumentContentRequest(document_id=request.match_info["document_id"]),
            metadata=auth.metadata(request, caller),
        )
    )
    return document_response(found.content, found.content_type, found.filename)


# --- Shared -------------------------------------------------------------------------------------


async def _call_or_404(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise web.HTTPNotFound() from None
        raise


def _refused(exc: grpc.aio.AioRpcError) -> FieldErrors:
    """The field messages of a refusal the page shows; anything else is raised again."""
    errors = invalid(exc)
    if errors is not None:
        return errors
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        return {"_form": [precondition_text(exc)]}
    if exc.code() == grpc.StatusCode.NOT_FOUND:
        raise web.HTTPNotFound() from None
    raise exc


async def _form_page(
    request: web.Request,
    caller: Caller,
    which: str,
    values: dict[str, str],
    errors: FieldErrors,
    status: int = 400,
) -> web.Response:
    """staff/chart_record_form.html for `which`: medication, upload or letter."""
    patient = await patients.fetch_patient(request, caller)
    context: dict[str, Any] = {
        **patients.patient_context(patient),
        "which": which,
        "values": values,
        "errors": errors,
        "categories": CATEGORIES,
        "max_mib": MAX_FILE_BYTES // (1024 * 1024),
    }
    if which == "letter":
        listed = await request.app[BACKENDS].forms.ListLetterTemplates(
            pb.ListLetterTemplatesRequest(), metadata=auth.metadata(request, caller)
        )
        context["templates"] = [(t.id, t.name) for t in listed.items]
    return render(request, caller, "staff/chart_record_form.html", context, status=status)


def setup(app: web.Application) -> None:
    base = "/staff/patients/{patient_id}"
    app.router.add_get(base + "/medications/new", medication_form)
    app.router.add_post(base + "/medications", add_medication)
    app.router.add_post(base + "/medications/{medication_id}/discontinue", discontinue_medication)
    app.router.add_get(base + "/documents/upload", upload_form)
    app.router.add_post(base + "/documents/upload", upload)
    app.router.add_get(base + "/documents/letter", letter_form)
    app.router.add_post(base + "/documents/letter", create_letter)
    app.router.add_post(base + "/documents/{document_id}/share", share)
    app.router.add_get(base + "/documents/{document_id}", download)
