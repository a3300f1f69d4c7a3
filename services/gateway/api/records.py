"""Records over the API: medications, refill requests, chart documents and letter templates.

forms owns all of it. Patient routes never name a patient: forms reads the patient from the
principal, and another patient's refill or document is NOT_FOUND there, so 404 here.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Any, TypeVar

import grpc

from portal.forms.v1 import forms_pb2 as pb
from portal.identity.v1 import identity_pb2
from services.gateway import auth
from services.gateway.api.json_io import invalid, timestamp
from services.gateway.api.operation import (
    Answer,
    Call,
    Header,
    Operation,
    Reply,
    not_found,
    path_id,
    patient_id,
)
from services.gateway.api.patients import of_known_patient
from services.gateway.api.records_models import (
    ChartDocument,
    DocumentList,
    DocumentSummary,
    DocumentUpload,
    LetterFromTemplate,
    LetterTemplate,
    LetterTemplateList,
    Medication,
    MedicationList,
    NewLetterTemplate,
    NewMedication,
    NewRefillRequest,
    RefillDecision,
    RefillQuery,
    RefillRequest,
    RefillRequestList,
)
from services.gateway.backends import PDF_DEADLINE
from services.gateway.clinic_time import day_month_year
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.records_view import (
    CATEGORY,
    CATEGORY_BY_NAME,
    INLINE_TYPES,
    REFILL_STATUS_BY_NAME,
    document_response,
    refill_status,
)
from services.gateway.security import Problem
from services.runtime.errors import INVALID, field_errors

T = TypeVar("T")
NAME_TAKEN = "A template of this name exists."  # forms' words for a taken name
MAX_UPLOAD_BYTES = 10 * 1024**2
# The file plus the form's other fields and the multipart framing.
UPLOAD_BODY_BYTES = MAX_UPLOAD_BYTES + 256 * 1024


async def found(call: Awaitable[T], what: str) -> T:
    """The backend's answer; its NOT_FOUND (unknown, or another patient's) is a 404."""
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise not_found(what) from None
        raise


# --- Messages as models ---------------------------------------------------------------------------


def medication(m: pb.Medication) -> Medication:
    return Medication(
        id=m.id,
        name=m.name,
        dose=m.dose,
        instructions=m.instructions,
        current=m.current,
        added_at=timestamp(m.added_at),
        discontinued_at=timestamp(m.discontinued_at),
    )


def refill(r: pb.RefillRequest) -> RefillRequest:
    return RefillRequest(
        id=r.id,
        patient_id=r.patient_id,
        medication=r.medication,
        dose=r.dose,
        quantity=r.quantity,
        pharmacy=r.pharmacy,
        note=r.note,
        status=refill_status(r.status)[0],  # type: ignore[arg-type]
        decision_note=r.decision_note,
        requested_at=timestamp(r.requested_at),
        decided_at=timestamp(r.decided_at),
    )


def _document_fields(d: pb.Document) -> dict[str, Any]:
    return {
        "id": d.id,
        "title": d.title,
        "category": CATEGORY.get(d.category, ("record", ""))[0],
        "created_at": timestamp(d.created_at),
        "content_type": d.content_type,
    }


def document(d: pb.Document) -> ChartDocument:
    return ChartDocument(
        **_document_fields(d),
        patient_id=d.patient_id,
        size=d.size,
        sha256=d.sha256,
        share_with_patient=d.share_with_patient,
        origin="letter" if d.origin == "letter" else "upload",
    )


def template(t: pb.LetterTemplate) -> LetterTemplate:
    return LetterTemplate(
        id=t.id, name=t.name, title=t.title, body=t.body, created_at=timestamp(t.created_at)
    )


# --- Patient ------------------------------------------------------------------------------------


async def my_medications(call: Call[None, None]) -> Reply:
    reply = await call.request.app[BACKENDS].forms.ListMedications(
        pb.ListMedicationsRequest(), metadata=auth.metadata(call.request, call.caller)
    )
    return Reply(MedicationList(items=[medication(m) for m in reply.items]))


async def request_refill(call: Call[NewRefillRequest, None]) -> Reply:
    body = call.body
    created = await call.request.app[BACKENDS].forms.RequestRefill(
        pb.RequestRefillRequest(
            medication=body.medication,
            dose=body.dose,
            quantity=body.quantity,
            pharmacy=body.pharmacy,
            note=body.note,
        ),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(refill(created), status=201)


async def my_refills(call: Call[None, None]) -> Reply:
    reply = await call.request.app[BACKENDS].forms.ListRefillRequests(
        pb.ListRefillRequestsRequest(), metadata=auth.metadata(call.request, call.caller)
    )
    return Reply(RefillRequestList(items=[refill(r) for r in reply.items], offered=reply.offered))


async def withdraw_refill(call: Call[None, None]) -> Reply:
    refill_id = path_id(call, "refill_id", "refill request")
    withdrawn = await found(
        call.request.app[BACKENDS].forms.WithdrawRefillRequest(
            pb.WithdrawRefillRequestRequest(refill_request_id=refill_id),
            metadata=auth.metadata(call.request, call.caller),
        ),
        "refill request",
    )
    return Reply(refill(withdrawn))


async def my_documents(call: Call[None, None]) -> Reply:
    reply = await call.request.app[BACKENDS].forms.ListDocuments(
        pb.ListDocumentsRequest(), metadata=auth.metadata(call.request, call.caller)
    )
    return Reply(DocumentList(items=[DocumentSummary(**_document_fields(d)) for d in reply.items]))


async def my_document_content(call: Call[None, None]) -> Reply:
    document_id = path_id(call, "document_id", "document")
    content = await found(
        call.request.app[BACKENDS].forms.GetDocumentContent(
            pb.GetDocumentContentRequest(document_id=document_id),
            metadata=auth.metadata(call.request, call.caller),
        ),
        "document",
    )
    return Reply(raw=document_response(content.content, content.content_type, content.filename))


# --- Staff --------------------------------------------------------------------------------------


async def medications(call: Call[None, None]) -> Reply:
    target = patient_id(call)
    reply = await of_known_patient(
        call,
        target,
        call.request.app[BACKENDS].forms.ListMedications(
            pb.ListMedicationsRequest(patient_id=target, include_discontinued=True),
            metadata=auth.metadata(call.request, call.caller),
        ),
    )
    return Reply(MedicationList(items=[medication(m) for m in reply.items]))


async def add_medication(call: Call[NewMedication, None]) -> Reply:
    body = call.body
    added = await found(
        call.request.app[BACKENDS].forms.AddMedication(
            pb.AddMedicationRequest(
                patient_id=patient_id(call),
                name=body.name,
                dose=body.dose,
                instructions=body.instructions,
            ),
            metadata=auth.metadata(call.request, call.caller),
        ),
        "patient chart",
    )
    return Reply(medication(added), status=201)


async def refills(call: Call[None, RefillQuery]) -> Reply:
    status = REFILL_STATUS_BY_NAME.get(call.query.status, pb.REFILL_STATUS_UNSPECIFIED)
    reply = await call.request.app[BACKENDS].forms.ListRefillRequests(
        pb.ListRefillRequestsRequest(status=status),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(RefillRequestList(items=[refill(r) for r in reply.items], offered=reply.offered))


async def decide_refill(call: Call[RefillDecision, None]) -> Reply:
    refill_id = path_id(call, "refill_id", "refill request")
    decided = await found(
        call.request.app[BACKENDS].forms.DecideRefillRequest(
            pb.DecideRefillRequestRequest(
                refill_request_id=refill_id,
                decision=REFILL_STATUS_BY_NAME[call.body.decision],
                note=call.body.note,
            ),
            metadata=auth.metadata(call.request, call.caller),
        ),
        "refill request",
    )
    return Reply(refill(decided))


async def _merge(call: Call[Any, Any], pid: str) -> pb.LetterMerge:
    """The merge fields' values: the patient's name (identity), the clinic, today there."""
    patient = await found(
        call.request.app[BACKENDS].identity.GetPatient(
            identity_pb2.GetPatientRequest(patient_id=pid),
            metadata=auth.metadata(call.request, call.caller),
        ),
        "patient",
    )
    settings = call.request.app[SETTINGS]
    today = datetime.now(settings.clinic_timezone)
    name = (patient.first_name, patient.middle_name, patient.last_name)
    return pb.LetterMerge(
        patient_name=" ".join(part for part in name if part),
        clinic_name=settings.clinic_name,
        date=day_month_year(today.date()),
    )


async def add_document(call: Call[LetterFromTemplate | DocumentUpload, None]) -> Reply:
    pid = patient_id(call)
    forms = call.request.app[BACKENDS].forms
    md = auth.metadata(call.request, call.caller)
    body = call.body
    if isinstance(body, DocumentUpload):
        request: Awaitable[pb.Document] = forms.UploadDocument(
            pb.UploadDocumentRequest(
                patient_id=pid,
                title=body.title,
                category=CATEGORY_BY_NAME[body.category],
                share_with_patient=body.share_with_patient == "true",
                content=body.file,
            ),
            metadata=md,
        )
    else:
        request = forms.CreateLetter(
            pb.CreateLetterRequest(
                patient_id=pid,
                template_id=body.template_id,
                title=body.title,
                merge=await _merge(call, pid),
                share_with_patient=body.share_with_patient,
            ),
            metadata=md,
            timeout=PDF_DEADLINE,
        )
    try:
        added = await found(request, "patient chart")
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        # forms names the bytes `content`; the upload's field is `file`.
        errors = {("file" if k == "content" else k): v for k, v in field_errors(exc).items()}
        if list(errors) == ["template_id"]:  # a well-formed id naming no template
            raise not_found("letter template") from None
        raise invalid(errors, exc.details() or INVALID) from None
    return Reply(document(added), status=201)


async def letter_templates(call: Call[None, None]) -> Reply:
    reply = await call.request.app[BACKENDS].forms.ListLetterTemplates(
        pb.ListLetterTemplatesRequest(), metadata=auth.metadata(call.request, call.caller)
    )
    return Reply(LetterTemplateList(items=[template(t) for t in reply.items]))


async def add_letter_template(call: Call[NewLetterTemplate, None]) -> Reply:
    body = call.body
    try:
        created = await call.request.app[BACKENDS].forms.CreateLetterTemplate(
            pb.CreateLetterTemplateRequest(name=body.name, title=body.title, body=body.body),
            metadata=auth.metadata(call.request, call.caller),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and NAME_TAKEN in str(
            field_errors(exc).get("name")
        ):
            raise Problem(
                409, "Not possible now", "A template of this name exists.", code="TEMPLATE_EXISTS"
            ) from None
        raise
    return Reply(template(created), status=201)


# --- Declarations -------------------------------------------------------------------------------

PORTAL = "/api/v1/portal"
PATIENTS = "/api/v1/patients/{patient_id}"
CONTENT_TYPES = (*sorted(INLINE_TYPES), "application/octet-stream")


def _patient_operations() -> list[Operation]:
    return [
        Operation(
            "GET",
            PORTAL + "/medications",
            my_medications,
            operation_id="listMyMedications",
            summary="The patient's current medications (kept in the chart by staff)",
            tag="portal",
            security="patient",
            answers=(Answer(200, "Current medications.", MedicationList),),
        ),
        Operation(
            "POST",
            PORTAL + "/refill-requests",
            request_refill,
            operation_id="requestRefill",
            summary="Ask for a prescription refill",
            description="409 REFILLS_NOT_OFFERED while the clinic does not offer refill "
            "requests in the portal; 409 REFILL_PENDING when a request for the same medicine "
            "(name and dose) is still waiting for the clinic's answer (`errors` names "
            "`medication`).",
            tag="portal",
            security="patient",
            body=NewRefillRequest,
            answers=(Answer(201, "Requested.", RefillRequest),),
            problems=(409,),
        ),
        Operation(
            "GET",
            PORTAL + "/refill-requests",
            my_refills,
            operation_id="listMyRefillRequests",
            summary="The patient's refill requests with the clinic's answers, newest first",
            tag="portal",
            security="patient",
            answers=(Answer(200, "Refill requests.", RefillRequestList),),
        ),
        Operation(
            "POST",
            PORTAL + "/refill-requests/{refill_id}/withdraw",
            withdraw_refill,
            operation_id="withdrawRefillRequest",
            summary="Withdraw a refill request while it is pending (409 NOT_PENDING after)",
            tag="portal",
            security="patient",
            answers=(Answer(200, "Withdrawn.", RefillRequest),),
            problems=(409,),
        ),
        Operation(
            "GET",
            PORTAL + "/documents",
            my_documents,
            operation_id="listMyDocuments",
            summary="Documents the clinic shared with the patient, newest first",
            tag="portal",
            security="patient",
            answers=(Answer(200, "Shared documents.", DocumentList),),
        ),
        Operation(
            "GET",
            PORTAL + "/documents/{document_id}/content",
            my_document_content,
            operation_id="getMyDocumentContent",
            summary="A shared document's bytes (the download is audited)",
            description="Served with the type read from the bytes at upload: PDF and images "
            "inline, anything else as an attachment; always `Content-Security-Policy: sandbox`.",
            tag="portal",
            security="patient",
            answers=(
                Answer(
                    200,
                    "The document.",
                    media_types=CONTENT_TYPES,
                    headers={
                        "Content-Disposition": Header(
                            "inline or attachment, with a filename.", True
                        ),
                        "Content-Security-Policy": Header("sandbox", True),
                    },
                ),
            ),
        ),
    ]


def _staff_operations() -> list[Operation]:
    return [
        Operation(
            "GET",
            PATIENTS + "/medications",
            medications,
            operation_id="listMedications",
            summary="A patient's medications, current first (discontinued ones too)",
            description="404: no such patient.",
            tag="records",
            security="staff",
            answers=(Answer(200, "Medications.", MedicationList),),
        ),
        Operation(
            "POST",
            PATIENTS + "/medications",
            add_medication,
            operation_id="addMedication",
            summary="Add a current medication to a patient's chart",
            tag="records",
            security="staff",
            body=NewMedication,
            answers=(Answer(201, "Added.", Medication),),
        ),
        Operation(
            "GET",
            "/api/v1/refill-requests",
            refills,
            operation_id="listRefillRequests",
            summary="Refill requests across patients, by status",
            tag="records",
            security="staff",
            query=RefillQuery,
            answers=(Answer(200, "Refill requests.", RefillRequestList),),
        ),
        Operation(
            "POST",
            "/api/v1/refill-requests/{refill_id}/decision",
            decide_refill,
            operation_id="decideRefillRequest",
            summary="Approve, deny (a note is required: the reason) or ask for an appointment",
            description="409 NOT_PENDING once the request is decided or withdrawn.",
            tag="records",
            security="staff",
            body=RefillDecision,
            answers=(Answer(200, "Decided.", RefillRequest),),
            problems=(409,),
        ),
        Operation(
            "POST",
            PATIENTS + "/documents",
            add_document,
            operation_id="addDocument",
            summary="Upload a PDF or image to the chart, or write a letter from a template",
            description="multipart/form-data: `file` (PDF, PNG, JPEG, GIF or WebP, at most "
            "10 MiB; the type is read from the bytes), `title`, `category`, "
            "`share_with_patient`. application/json: a letter from a template, its merge "
            "fields filled in, stored as text and PDF.",
            tag="records",
            security="staff",
            body=LetterFromTemplate,
            upload=DocumentUpload,
            upload_limit=UPLOAD_BODY_BYTES,
            answers=(Answer(201, "Added to the chart.", ChartDocument),),
        ),
        Operation(
            "GET",
            "/api/v1/letter-templates",
            letter_templates,
            operation_id="listLetterTemplates",
            summary="Form letter templates, by name",
            tag="records",
            security="staff",
            answers=(Answer(200, "Templates.", LetterTemplateList),),
        ),
        Operation(
            "POST",
            "/api/v1/letter-templates",
            add_letter_template,
            operation_id="createLetterTemplate",
            summary="A new form letter template (409 TEMPLATE_EXISTS when the name is taken)",
            tag="records",
            security="staff",
            body=NewLetterTemplate,
            answers=(Answer(201, "Created.", LetterTemplate),),
            problems=(409,),
        ),
    ]


def operations() -> list[Operation]:
    return _patient_operations() + _staff_operations()
