"""Bodies of the records API: medications, refill requests, chart documents, letter templates,
profile updates and the staff work queue (issue 9). Bounds follow the services' own limits.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from services.gateway.api.fields import REQUIRED_PATTERN, Address, Email, Phone, Text
from services.gateway.api.models import (
    Contact,
    Query,
    Request,
    Response,
    Time,
    Uuid,
    _at_least_one,
    _no_defaults,
)

RefillStatus = Literal["requested", "approved", "denied", "needs_appointment", "withdrawn"]
Category = Literal["letter", "report", "record"]
ProfileUpdateStatus = Literal["pending", "accepted", "rejected", "replaced"]
QueueKind = Literal["form_review", "refill_request", "profile_update", "portal_booking"]
# Every status of every kind (services/gateway/work_queue.py KINDS, which a test compares).
QueueStatus = Literal[
    "completed",
    "signed",
    "accepted",
    "returned",
    "requested",
    "approved",
    "denied",
    "needs_appointment",
    "withdrawn",
    "pending",
    "rejected",
    "replaced",
    "booked",
    "cancelled",
    "rescheduled",
]
Short = Annotated[str, Text(200)]

# Letter text: braces only as {{, }} or a merge field (forms refuses anything else).
_MERGE = r"|\{\{|\}\}|\{(?:patient_name|date|clinic_name)\}"
_REFUSED = "\\u0000-\\u001f\\u007f-\\u009f"
_LINE_TOKEN = "(?:[^{}" + _REFUSED + "]" + _MERGE + ")"
_FREE_TOKEN = "(?:[^{}\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]|\\r\\n" + _MERGE + ")"
# Linear to match: one alternative per character; the lookaheads refuse blank text.
MERGE_LINE = f"^(?!\\s+$){_LINE_TOKEN}*$"
MERGE_LINE_REQUIRED = f"^(?!\\s*$){_LINE_TOKEN}*$"
MERGE_TEXT_REQUIRED = f"^(?!\\s*$){_FREE_TOKEN}*$"
MERGE_MESSAGE = (
    "Use braces only as {{, }} or the merge fields {patient_name}, {date}, {clinic_name}."
)
Note = Annotated[str, Text(2000, multiline=True)]


# --- Requests -----------------------------------------------------------------------------------


class NewRefillRequest(Request):
    medication: Annotated[str, Text(200, required=True)]
    dose: Short = ""
    quantity: Short = ""
    pharmacy: Short = ""
    note: Note = ""


class NewMedication(Request):
    name: Annotated[str, Text(200, required=True)]
    dose: Short = ""
    instructions: Note = ""


def _denial_needs_a_note(schema: dict[str, Any]) -> None:
    _no_defaults(schema)
    schema["if"] = {"properties": {"decision": {"const": "denied"}}, "required": ["decision"]}
    schema["then"] = {"properties": {"note": {"pattern": REQUIRED_PATTERN}}, "required": ["note"]}


class RefillDecision(Request):
    model_config = ConfigDict(json_schema_extra=_denial_needs_a_note)

    decision: Literal["approved", "denied", "needs_appointment"]
    note: Annotated[
        str, Text(1000, multiline=True, description="Required to deny: the reason.")
    ] = ""

    @model_validator(mode="after")
    def _reason(self) -> RefillDecision:
        if self.decision == "denied" and not self.note.strip():
            raise ValueError("Give the patient the reason for the denial.")
        return self


class LetterFromTemplate(Request):
    """A form letter: the template's text with the merge fields filled in, kept as PDF."""

    template_id: Uuid
    title: Annotated[
        str,
        Text(
            200,
            pattern=MERGE_LINE,
            message=MERGE_MESSAGE,
            description="Empty or absent: the template's title. Merge fields are filled in.",
        ),
    ] = ""
    share_with_patient: bool = False


class DocumentUpload(Request):
    """The multipart/form-data fields of an upload (a PDF or image of at most 10 MiB)."""

    model_config = ConfigDict(strict=False)

    file: bytes = Field(
        json_schema_extra={"contentMediaType": "application/octet-stream"},
        description="The type is read from the bytes (PDF, PNG, JPEG, GIF, WebP), never from "
        "the client; anything else is 400.",
    )
    title: Annotated[str, Text(200, required=True)]
    category: Category = "record"
    share_with_patient: Literal["true", "false"] = "false"


class NewLetterTemplate(Request):
    name: Annotated[
        str, Text(120, required=True, pattern=MERGE_LINE_REQUIRED, message=MERGE_MESSAGE)
    ]
    title: Annotated[
        str,
        Text(200, pattern=MERGE_LINE, message=MERGE_MESSAGE, description="Empty: the name."),
    ] = ""
    body: Annotated[
        str,
        Text(
            20_000,
            multiline=True,
            required=True,
            pattern=MERGE_TEXT_REQUIRED,
            message=MERGE_MESSAGE,
            description="Merge fields: {patient_name}, {date}, {clinic_name}; {{ and }} for "
            "braces.",
        ),
    ]


class NewProfileUpdate(Request):
    """The contact details to change: only the members sent; send at least one."""

    model_config = ConfigDict(json_schema_extra=_at_least_one)

    address: Address = ""
    phone: Phone = ""
    email: Email = ""
    preferred_contact: Contact = ""

    @model_validator(mode="after")
    def _not_empty(self) -> NewProfileUpdate:
        if not self.model_fields_set:
            raise ValueError("Send at least one of address, phone, email, preferred_contact.")
        return self


class ProfileUpdateDecision(Request):
    decision: Literal["accept", "reject"]
    note: Annotated[str, Text(1000, multiline=True, description="Shown to the patient.")] = ""


class RefillQuery(Query):
    status: RefillStatus | Literal[""] = ""


class ProfileUpdateQuery(Query):
    status: ProfileUpdateStatus | Literal[""] = ""


class WorkQueueQuery(Query):
    kind: QueueKind | Literal[""] = Field(default="", description="Empty: every kind.")
    status: QueueStatus | Literal[""] = Field(
        default="",
        description="Empty: what waits for staff (pending profile updates, completed or "
        "signed forms, requested refills, patients' changes to appointments not yet begun).",
    )


# --- Responses ----------------------------------------------------------------------------------


class Medication(Response):
    id: Uuid
    name: str
    dose: str
    instructions: str
    current: bool
    added_at: Time
    discontinued_at: Time


class MedicationList(Response):
    items: list[Medication]


class RefillRequest(Response):
    id: Uuid
    patient_id: Uuid
    medication: str
    dose: str
    quantity: str
    pharmacy: str
    note: str
    status: RefillStatus
    decision_note: str = Field(description="The clinic's answer (a denial's reason).")
    requested_at: Time
    decided_at: Time


class RefillRequestList(Response):
    items: list[RefillRequest]
    offered: bool = Field(description="Whether the portal takes refill requests now.")


class DocumentSummary(Response):
    id: Uuid
    title: str
    category: Category
    created_at: Time
    content_type: str


class DocumentList(Response):
    items: list[DocumentSummary]


class ChartDocument(DocumentSummary):
    patient_id: Uuid
    size: int
    sha256: str
    share_with_patient: bool
    origin: Literal["upload", "letter"]


class LetterTemplate(Response):
    id: Uuid
    name: str
    title: str
    body: str
    created_at: Time


class LetterTemplateList(Response):
    items: list[LetterTemplate]


class ContactDetails(Response):
    """Each member the patient asked to change; null: not asked to change."""

    address: str | None = None
    phone: str | None = None
    email: str | None = None
    preferred_contact: str | None = None


class ProfileUpdate(Response):
    id: Uuid
    status: ProfileUpdateStatus
    proposed: ContactDetails
    decision_note: str
    created_at: Time
    decided_at: Time


class ProfileUpdateList(Response):
    items: list[ProfileUpdate]


class StaffProfileUpdate(ProfileUpdate):
    patient_id: Uuid
    patient_name: str
    chart_number: str
    current: ContactDetails = Field(
        description="The patient's values of the same members: now while pending, as they "
        "were when decided otherwise."
    )
    decided_by: str


class StaffProfileUpdateList(Response):
    items: list[StaffProfileUpdate]


class WorkQueueItem(Response):
    kind: QueueKind
    id: Uuid
    patient_id: Uuid
    summary: str
    created_at: Time
    status: str


class WorkQueue(Response):
    items: list[WorkQueueItem] = Field(description="Newest first.")
    unavailable: list[str] = Field(
        description="Services that did not answer: their items are missing."
    )
