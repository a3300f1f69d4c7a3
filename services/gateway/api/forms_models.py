"""The forms API's bodies: form definitions, chart forms, answers, signatures.

Answers are JSON values, one per question's link_id: a boolean, a number, a string (dates,
times and choices are strings too) or an attachment object; null or "" removes an answer.
There is no multi-choice item type, so no answer is a list. The forms service checks each
answer against its item's type (400 naming the link_id); what a schema can say is said here.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, RootModel

from services.gateway.api.fields import Text
from services.gateway.api.models import Request, Response, Time, Uuid

FormKind = Literal["consent", "visit", "appointment", "refill"]
ItemType = Literal[
    "group",
    "display",
    "boolean",
    "decimal",
    "integer",
    "date",
    "dateTime",
    "time",
    "string",
    "text",
    "choice",
    "open-choice",
    "attachment",
]
# A definition sent through the API is flat: groups and conditions are the builder's.
NewItemType = Literal[
    "display",
    "boolean",
    "decimal",
    "integer",
    "date",
    "dateTime",
    "time",
    "string",
    "text",
    "choice",
    "open-choice",
    "attachment",
]
ChartFormStatus = Literal[
    "not-started", "in-progress", "completed", "signed", "accepted", "returned", "withdrawn"
]
STATUS_TEXT = (
    "not-started, in-progress (answers saved), completed (submitted), signed (a consent form, "
    "completed by signing), accepted or returned (staff review; a returned form can be edited "
    "again), withdrawn (staff only: its appointment was cancelled before it was started)."
)
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
LINK_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
SAFE_INTEGER = 2**53 - 1  # answers are hashed as RFC 8785 JSON: IEEE doubles
MAX_ITEMS = 500

FormId = Annotated[str, Text(36, pattern=UUID_PATTERN, message="Not a valid id.", format="uuid")]
LinkId = Annotated[
    str,
    Text(
        64,
        pattern=LINK_ID_PATTERN,
        message="Use letters, digits, '.', '_' or '-' (at most 64), starting with a letter or "
        "digit.",
    ),
]


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Must be base64.") from None
    return value


def _base64_text(max_length: int, description: str) -> Text:
    return Text(
        max_length, pattern=BASE64_PATTERN, message="Must be base64.", description=description
    )


FileData = Annotated[
    str, _base64_text(1_400_000, "The file, base64; at most 1 MiB."), AfterValidator(_base64)
]
SIGNATURE_IMAGE_CHARS = 350_000  # base64 of 256 KiB, forms' limit for the PNG, and some room
SignatureImage = Annotated[
    str,
    _base64_text(
        SIGNATURE_IMAGE_CHARS,
        "Optional: the drawn signature, a PNG of at most 256 KiB and 4000x4000 pixels.",
    ),
    AfterValidator(_base64),
]


def form_ids_unique(values: list[str]) -> list[str]:
    if len({uuid.UUID(v) for v in values}) != len(values):
        raise ValueError("A form is listed twice.")
    return values


FormIds = Annotated[
    list[FormId],
    Field(max_length=200, json_schema_extra={"uniqueItems": True}),
    AfterValidator(form_ids_unique),
]


# --- Requests -----------------------------------------------------------------------------------


AGREEMENT = (
    "A consent form's yes/no (boolean) question stating what the signer agrees to: the form is "
    "signed only with it answered Yes (409 CONSENT_DECLINED otherwise)."
)


class NewOption(Request):
    value: Annotated[str, Text(200, required=True, description="What the answer holds.")]
    display: Annotated[str, Text(200, description="What the patient reads (value when empty).")] = (
        ""
    )


class NewItem(Request):
    link_id: LinkId
    text: Annotated[str, Text(4000, multiline=True, required=True)]
    type: NewItemType
    required: bool = Field(default=False, description="Not for display items.")
    options: Annotated[
        list[NewOption],
        Field(
            max_length=100,
            description="Needed by choice and open-choice items (distinct values), and only "
            "by them.",
        ),
    ] = []
    help_text: Annotated[str, Text(4000, multiline=True)] = ""
    agreement: bool = Field(default=False, description=AGREEMENT)


class FormDefinitionIn(Request):
    """A form's definition; link_ids are unique within the form."""

    title: Annotated[str, Text(200, required=True)]
    kind: FormKind = Field(description="Cannot change when a form is updated.")
    description: Annotated[str, Text(4000, multiline=True)] = ""
    items: Annotated[list[NewItem], Field(min_length=1, max_length=MAX_ITEMS)]


class PortalFormsIn(Request):
    form_ids: FormIds = Field(
        description="Exactly these forms are available in the portal, in this order ([]: none)."
    )


class VisitFormsIn(Request):
    form_ids: FormIds = Field(description="Visit or appointment forms, in order ([]: none).")


class AssignIn(Request):
    form_id: FormId


class Accept(Request):
    decision: Literal["accept"]
    note: Annotated[str, Text(2000, multiline=True)] = ""


class Return(Request):
    decision: Literal["return"]
    note: Annotated[
        str, Text(2000, multiline=True, required=True, description="The reason the patient reads.")
    ]


class ReviewIn(RootModel[Annotated[Accept | Return, Field(discriminator="decision")]]):
    """Accept a completed or signed form into the chart, or return it (with a reason)."""


class Attachment(Request):
    content_type: Literal["application/pdf", "image/png", "image/jpeg"]
    data: FileData
    title: Annotated[str, Text(200)] = ""


Number = Annotated[float, Field(ge=-SAFE_INTEGER, le=SAFE_INTEGER)]
Integer = Annotated[int, Field(ge=-SAFE_INTEGER, le=SAFE_INTEGER)]
AnswerIn = Annotated[
    bool | Integer | Number | Annotated[str, Text(10000, multiline=True)] | Attachment | None,
    Field(
        description="boolean: true/false; integer, decimal: a number; date: YYYY-MM-DD; "
        "dateTime: ISO 8601 with offset; time: HH:MM; string, text: text; choice: an option's "
        "value; open-choice: an option's value or own text; attachment: a file object. "
        'null or "" removes the answer.'
    ),
]


class AnswersIn(Request):
    answers: Annotated[
        dict[LinkId, AnswerIn],
        Field(
            max_length=MAX_ITEMS,
            description="By link_id; replaces the saved answers (a partial set is fine).",
            # Keys are link_ids: the document says so (patternProperties alone allows others).
            json_schema_extra={"additionalProperties": False},
        ),
    ]


class SignatureIn(Request):
    typed_name: Annotated[str, Text(200, required=True, description="Your full name, as typed.")]
    agree_to_electronic_signature: Literal[True] = Field(
        description="I agree to sign electronically (the current disclosure)."
    )
    drawn_signature_png: SignatureImage = ""


# --- Responses ----------------------------------------------------------------------------------


class FormSummary(Response):
    id: Uuid
    title: str
    kind: FormKind
    version: int
    available_in_portal: bool
    position: int = Field(description="1-based place in the portal; 0 when not available.")


class FormList(Response):
    items: list[FormSummary] = Field(
        description="Portal forms first in portal order, then the others by title."
    )


class VisitForms(Response):
    appointment_type_id: Uuid
    forms: list[FormSummary]


class Option(Response):
    value: str
    display: str


class Condition(Response):
    question: str = Field(description="The link_id of the other item.")
    operator: Literal["exists", "=", "!=", ">", "<", ">=", "<="]
    answer: bool | float | str | None


class FormItem(Response):
    link_id: str
    text: str
    type: ItemType
    required: bool
    options: list[Option]
    help_text: str
    items: list[FormItem] = Field(description="A group's items.")
    enable_when: list[Condition] = Field(description="Shown only when these hold.")
    enable_when_any: bool = Field(description="true: any condition; false: all.")
    agreement: bool = Field(description=AGREEMENT)


class FormDefinition(Response):
    title: str
    kind: FormKind
    description: str
    items: list[FormItem]


class Form(Response):
    id: Uuid
    version: int
    available_in_portal: bool
    position: int
    published: bool = Field(description="This version has answers: a change makes a new one.")
    definition: FormDefinition


class StoredAttachment(Response):
    content_type: str
    data: str = Field(description="base64")
    title: str


Answer = bool | int | float | str | StoredAttachment
Answers = Annotated[dict[str, Answer], Field(description="Saved answers by link_id.")]


class ChartFormSummary(Response):
    id: Uuid
    form_id: Uuid
    version: int = Field(description="The form version this chart form answers.")
    title: str
    kind: FormKind
    status: ChartFormStatus = Field(description=STATUS_TEXT)
    due: Time
    done: bool = Field(description="completed, signed or accepted.")
    return_reason: str = Field(description="Why staff returned it (while returned).")


class ChartFormList(Response):
    items: list[ChartFormSummary]


class Signature(Response):
    signer_kind: str
    signer_id: str
    typed_name: str
    signed_at: Time
    source_address: str
    user_agent: str
    form_id: Uuid
    form_version: int
    disclosure_version: int
    document_sha256: str = Field(
        description="SHA-256 (hex) of the RFC 8785 JSON of answers, form_id, form_version and "
        "typed_name."
    )
    has_drawn_signature: bool
    drawn_signature_sha256: str


class ChartFormEvent(Response):
    at: Time
    action: str
    actor_kind: str
    actor: str
    source_address: str
    user_agent: str
    detail: str


class ChartForm(ChartFormSummary):
    """A chart form as staff see it: the exact definition, answers, signature and history."""

    patient_id: Uuid
    assigned_at: Time
    assigned_by: str
    submitted_at: Time
    reviewed_by: str
    reviewed_at: Time
    definition: FormDefinition
    answers: Answers
    signature: Signature | None
    events: list[ChartFormEvent]


class PortalForm(Response):
    """A form of the patient's own chart: what to answer, and what is answered."""

    id: Uuid
    form_id: Uuid
    version: int
    title: str
    kind: FormKind
    status: ChartFormStatus = Field(description=STATUS_TEXT)
    due: Time
    return_reason: str
    description: str
    items: list[FormItem]
    answers: Answers
    signed_at: Time = Field(description="null until signed.")


class SignatureReceipt(Response):
    chart_form_id: Uuid
    signed_at: Time
    document_sha256: str
    typed_name: str
    has_drawn_signature: bool


class Verification(Response):
    valid: bool = Field(description="The stored answers still hash to the signed document.")
    document_sha256: str = Field(description="As recorded at signing.")
    recomputed_sha256: str = Field(description="From the answers stored now.")
    drawn_signature_valid: bool = Field(description="The drawn image matches its hash.")
