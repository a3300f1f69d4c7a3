"""Between records rows (medications, refill requests, documents, templates) and messages."""

from __future__ import annotations

import asyncpg

from portal.forms.v1 import forms_pb2 as pb
from services.forms.convert import timestamp

CATEGORIES = {
    "letter": pb.DOCUMENT_CATEGORY_LETTER,
    "report": pb.DOCUMENT_CATEGORY_REPORT,
    "record": pb.DOCUMENT_CATEGORY_RECORD,
}
CATEGORY_NAMES = {v: k for k, v in CATEGORIES.items()}
REFILL_STATUSES = {
    "requested": pb.REFILL_STATUS_REQUESTED,
    "approved": pb.REFILL_STATUS_APPROVED,
    "denied": pb.REFILL_STATUS_DENIED,
    "needs_appointment": pb.REFILL_STATUS_NEEDS_APPOINTMENT,
    "withdrawn": pb.REFILL_STATUS_WITHDRAWN,
}
REFILL_STATUS_NAMES = {v: k for k, v in REFILL_STATUSES.items()}


def medication(row: asyncpg.Record, *, staff: bool) -> pb.Medication:
    return pb.Medication(
        id=str(row["id"]),
        patient_id=str(row["patient_id"]),
        name=row["name"],
        dose=row["dose"],
        instructions=row["instructions"],
        current=row["discontinued_at"] is None,
        added_at=timestamp(row["added_at"]),
        added_by=row["added_by"] if staff else "",
        discontinued_at=timestamp(row["discontinued_at"]),
    )


def refill(row: asyncpg.Record, *, staff: bool) -> pb.RefillRequest:
    return pb.RefillRequest(
        id=str(row["chart_form_id"]),
        patient_id=str(row["patient_id"]),
        medication_id=str(row["medication_id"] or ""),
        medication=row["medication"],
        dose=row["dose"],
        quantity=row["quantity"],
        pharmacy=row["pharmacy"],
        note=row["note"],
        status=REFILL_STATUSES[row["status"]],
        decision_note=row["decision_note"],
        decided_by=row["decided_by"] if staff else "",
        requested_at=timestamp(row["requested_at"]),
        decided_at=timestamp(row["decided_at"]),
        form_id=str(row["form_id"]),
        form_version=row["form_version"],
    )


def document(row: asyncpg.Record, *, staff: bool) -> pb.Document:
    return pb.Document(
        id=str(row["id"]),
        patient_id=str(row["patient_id"]),
        title=row["title"],
        category=CATEGORIES[row["category"]],
        content_type=row["content_type"],
        size=row["size"],
        sha256=row["sha256"],
        share_with_patient=row["share_with_patient"],
        origin=row["origin"],
        filename=row["filename"],
        created_at=timestamp(row["created_at"]),
        created_by=row["created_by"] if staff else "",
        body=(row["body"] or "") if staff else "",
    )


def template(row: asyncpg.Record) -> pb.LetterTemplate:
    return pb.LetterTemplate(
        id=str(row["id"]),
        name=row["name"],
        title=row["title"],
        body=row["body"],
        created_at=timestamp(row["created_at"]),
        created_by=row["created_by"],
    )
