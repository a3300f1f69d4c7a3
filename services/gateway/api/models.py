"""Every JSON body of /api/v1 as a pydantic model: the contract, checked and documented at once.

Requests are strict (a JSON "true" is not a boolean) and closed (unknown members are 400);
their strings follow the text rule and are bounded (see fields.py). Responses are built from
identity's messages by the handlers and serialised by pydantic's core.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.gateway.api.fields import (
    Address,
    BirthDate,
    Email,
    Name,
    OptionalName,
    Phone,
    QueryInt,
    Text,
    format_of,
)

Sex = Literal["female", "male", "other", "unknown"]
Contact = Literal["", "email", "phone", "mail"]
Realm = Literal["onsite", "offsite"]
Role = Literal["admin", "clinician", "front_desk"]
# RFC 3339 in UTC, or null when identity has no such moment.
Time = Annotated[str | None, format_of("date-time")]
Uuid = Annotated[str, format_of("uuid")]
Username = Annotated[
    str,
    Text(
        64,
        pattern="^(?:[A-Za-z][A-Za-z0-9._-]{2,63})?$",
        message="Use 3 to 64 letters a-z, digits, dots, hyphens and underscores, "
        "starting with a letter.",
        description="Empty or absent: the server suggests one. Compared in lower case.",
    ),
]
Password = Annotated[str, Text(1000, format="password")]


def _no_defaults(schema: dict[str, Any]) -> None:
    # A default is the server's business; documented, a fuzzer would send it as an example.
    for member in schema.get("properties", {}).values():
        member.pop("default", None)


def _at_least_one(schema: dict[str, Any]) -> None:
    _no_defaults(schema)
    schema["minProperties"] = 1


class Request(BaseModel):
    """A request body: strict types, unknown members refused."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_no_defaults)


class Query(BaseModel):
    """Query parameters: an unknown one is a 400 naming it (a misspelt filter must not silently
    widen a list of patient data)."""

    model_config = ConfigDict(extra="forbid")


class Response(BaseModel):
    """A response body."""

    model_config = ConfigDict(extra="forbid")


# --- Requests -----------------------------------------------------------------------------------


class StaffSignIn(Request):
    username: Annotated[str, Text(200)]
    password: Password


class PatientSignIn(Request):
    username: Annotated[str, Text(200)]
    password: Password


class NewPatient(Request):
    first_name: Name
    middle_name: OptionalName = ""
    last_name: Name
    date_of_birth: BirthDate
    sex: Sex
    email: Email = ""
    phone: Phone = ""
    address: Address = ""
    confirm_duplicate: bool = Field(
        default=False,
        description="Register even though a patient with the same name and date of birth "
        "exists (otherwise 409 DUPLICATE_PATIENT).",
    )


class PatientChanges(Request):
    """Only the members sent change; send at least one."""

    model_config = ConfigDict(json_schema_extra=_at_least_one)

    first_name: Name = ""
    middle_name: OptionalName = ""
    last_name: Name = ""
    date_of_birth: BirthDate = ""
    sex: Sex = "unknown"
    email: Email = ""
    phone: Phone = ""
    address: Address = ""
    allow_patient_portal: bool = Field(
        default=False, description="false ends every portal session of the patient."
    )
    preferred_contact: Contact = ""
    allow_email: bool = False
    allow_sms: bool = False
    allow_voice: bool = False

    @model_validator(mode="after")
    def _not_empty(self) -> PatientChanges:
        if not self.model_fields_set:
            raise ValueError("Send at least one member to change.")
        return self


class CredentialsRequest(Request):
    username: Username = ""
    password: Annotated[
        str,
        Text(
            1000,
            format="password",
            description="Empty or absent: the server generates one. Checked against the "
            "password policy (400 naming `password`).",
        ),
    ] = ""


class NoBody(Request):
    """Nothing to send (an empty body or {})."""


class PasswordChange(Request):
    current_password: Password
    new_password: Annotated[
        str,
        Text(
            1000,
            format="password",
            description="12-128 characters, not the username or e-mail, not a common password, "
            "different from the current one.",
        ),
    ]


class PatientQuery(Query):
    q: Annotated[
        str,
        Text(200, description="Name (typo-tolerant), date of birth, chart number or id."),
    ] = ""
    limit: Annotated[int, QueryInt(1, 100)] = 20


# --- Responses ----------------------------------------------------------------------------------


class Problem(Response):
    """RFC 9457 problem details; `code` names the reason where a client may act on it."""

    model_config = ConfigDict(extra="allow")

    type: Annotated[str, format_of("uri-reference")] = "about:blank"
    title: str
    status: int
    detail: str = ""
    code: str = Field(default="", description="Machine-readable reason.")
    errors: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Messages per request field (`first_name`, or a path like `fields.x`).",
    )


class StaffUser(Response):
    id: Uuid
    username: str
    display_name: str
    role: Role | Literal[""]


class StaffSession(Response):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    expires_at: Time = Field(description="When the session ends at the latest.")
    staff: StaffUser
    must_change_password: bool = Field(
        default=False,
        description="Only POST /api/v1/staff/password is allowed until the password changes.",
    )
    mfa_enrolment_required: bool = Field(
        default=False,
        description="The role requires two-factor sign-in and it is not set up: only "
        "POST /api/v1/staff/mfa/totp and /confirm (and sign-out) are allowed until it is.",
    )


class PortalAccount(Response):
    username: str
    must_change_password: bool
    temporary_password_expires_at: Time
    locked_until: Time
    last_sign_in_at: Time
    created_at: Time
    mfa_enrolled: bool = Field(
        default=False, description="Two-factor sign-in is on (DELETE …/mfa removes it)."
    )


class Demographics(Response):
    id: Uuid
    chart_number: str
    first_name: str
    middle_name: str
    last_name: str
    date_of_birth: str
    sex: str
    email: str
    phone: str
    address: str
    preferred_contact: str
    allow_email: bool
    allow_sms: bool
    allow_voice: bool


class RealmAccounts(Response):
    onsite: PortalAccount | None
    offsite: PortalAccount | None


class Patient(Demographics):
    allow_patient_portal: bool
    created_at: Time
    portal: RealmAccounts


class PatientSummary(Response):
    id: Uuid
    chart_number: str
    first_name: str
    last_name: str
    date_of_birth: str
    sex: str
    allow_patient_portal: bool


class PatientList(Response):
    items: list[PatientSummary]


class IssuedCredentials(Response):
    patient_id: Uuid
    realm: Realm
    username: str
    password: str = Field(description="Shown this once; only a reset can replace it.")
    temporary: bool
    expires_at: Time = Field(description="The temporary password expires then.")
    portal_url: str = Field(description="The realm's web address for the credentials letter.")
    patient_name: str


class ResetCredentials(Response):
    patient_id: Uuid
    realm: Realm
    username: str
    temporary_password: str = Field(description="Shown this once.")
    expires_at: Time = Field(description="The temporary password expires then.")
    portal_url: str
    patient_name: str


class PortalSession(Response):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    realm: Realm
    must_change_password: bool = Field(
        description="true: only POST /api/v1/portal/password is allowed until it is changed."
    )
    expires_at: Time = Field(description="When the session ends at the latest.")


class MyAccount(Response):
    realm: Realm | Literal[""]
    username: str


class MyProfile(Demographics):
    account: MyAccount


class Document(BaseModel):
    """The OpenAPI 3.1 document itself."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, str]
    paths: dict[str, dict[str, object]]
