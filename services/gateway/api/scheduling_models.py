"""The scheduling API's bodies and query strings: providers, hours, types, slots, appointments.

Instants are RFC 3339 with an offset (a time without one is 400: the API never guesses a zone);
the answers give them in the clinic's zone with its offset. Clock times ("09:00") and weekdays
are clinic-local (PORTAL_CLINIC_TIMEZONE). Bounds are scheduling's own (catalog.type_values),
so whatever the document allows the service takes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from services.gateway.api.fields import QueryInt, Text, format_of
from services.gateway.api.models import Query, Request, Response, Uuid, _at_least_one

# RFC 3339 date-times Python reads as they are, years 1970-2199 (beyond any horizon; a wider
# year would overflow the service's arithmetic), with Z or a numeric offset.
INSTANT_PATTERN = (
    "^(?:19[7-9][0-9]|2[01][0-9]{2})-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    "T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"
    "(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
START_PATTERN = "^(?:[01][0-9]|2[0-3]):[0-5][0-9]$"
END_PATTERN = "^(?:(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
# The service's FindAvailability cursor: "<epoch seconds>:<provider id>".
CURSOR_PATTERN = "^[0-9]{1,12}:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _real_instant(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("Must be a real date and time.") from None
    if parsed.tzinfo is None:  # the pattern requires an offset; this keeps it so
        raise ValueError("Give the time with its offset, like 2026-03-02T09:00:00+01:00.")
    return value


Instant = Annotated[
    str,
    Text(
        35,
        pattern=INSTANT_PATTERN,
        message="Use RFC 3339 with an offset and a year from 1970 to 2199, "
        "like 2026-03-02T09:00:00+01:00.",
        format="date-time",
    ),
    AfterValidator(_real_instant),
]
Id = Annotated[
    str, Text(36, pattern=UUID_PATTERN, message="Must be an id (a UUID).", format="uuid")
]
Minutes = Annotated[int, Field(description="Minutes.")]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
Status = Literal[
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
]
At = Annotated[str, format_of("date-time")]  # an answer's instant, in the clinic's offset
Reason = Annotated[str, Text(500, multiline=True, description="Optional, free text.")]

# --- Requests -----------------------------------------------------------------------------------


class NewProvider(Request):
    display_name: Annotated[
        str, Text(200, required=True, description="Unique among active providers (any case).")
    ]


class ProviderChanges(Request):
    """Only the members sent change; send at least one. A new name is set before `active`."""

    model_config = ConfigDict(json_schema_extra=_at_least_one)

    display_name: Annotated[
        str,
        Text(200, required=True, description="Unique among active providers (any case)."),
    ] = ""
    active: bool = Field(
        default=True,
        description="false: deactivate (existing appointments stay, no new times); true: "
        "reactivate (their hours offer times again).",
    )

    @model_validator(mode="after")
    def _not_empty(self) -> ProviderChanges:
        if not self.model_fields_set:
            raise ValueError("Send display_name, active or both.")
        return self


class WeeklyRange(Request):
    weekday: Weekday
    start: Annotated[str, Text(5, pattern=START_PATTERN, message="Use a time such as 09:00.")]
    end: Annotated[
        str,
        Text(
            5,
            pattern=END_PATTERN,
            message="Use a time such as 17:30 (24:00 for midnight).",
            description="After start; 24:00 ends the day.",
        ),
    ]


class WorkingHoursChange(Request):
    weekly: list[WeeklyRange] = Field(
        max_length=100,
        description="The whole weekly schedule (it replaces the old one), clinic-local times; "
        "ranges of one weekday must not overlap. Empty: no weekly hours.",
    )


class NewTimeOff(Request):
    start: Instant
    end: Instant = Field(description="After start.")
    reason: Reason = ""


class NewAppointmentType(Request):
    """Absent optional members take the service's defaults: slot interval = duration, buffers 0,
    minimum notice 60, horizon 90 days, cancellation notice 1440 (24 hours)."""

    name: Annotated[str, Text(200, required=True, description="Unique (any case).")]
    duration_minutes: Annotated[int, Field(ge=5, le=480)]
    slot_interval_minutes: Annotated[int, Field(ge=5, le=480)] | None = None
    buffer_before_minutes: Annotated[int, Field(ge=0, le=240)] | None = None
    buffer_after_minutes: Annotated[int, Field(ge=0, le=240)] | None = None
    minimum_notice_minutes: Annotated[int, Field(ge=0, le=43200)] | None = None
    horizon_days: Annotated[int, Field(ge=1, le=365)] | None = None
    cancellation_notice_minutes: Annotated[int, Field(ge=0, le=43200)] | None = None
    bookable_online: bool = Field(description="Patients may book it in the portal.")
    provider_ids: list[Id] = Field(max_length=200, description="Providers offering it.")


class MyNewAppointment(Request):
    appointment_type_id: Id
    provider_id: Id
    start: Instant = Field(description="A slot's start from the availability answer.")


class NewAppointment(MyNewAppointment):
    patient_id: Id


class Cancellation(Request):
    reason: Reason = ""


class StatusChange(Request):
    status: Literal["arrived", "noshow", "fulfilled"]


class Reschedule(Request):
    provider_id: Id = Field(description="The same provider or another one offering the type.")
    start: Instant


class AvailabilityQuery(Query):
    model_config = ConfigDict(populate_by_name=True)

    appointment_type_id: Id
    provider_id: Id = Field(default="", description="Absent: every provider offering the type.")
    from_: Instant = Field(
        default="",
        alias="from",
        description="Earliest start wanted (never before now + the type's minimum notice).",
    )
    limit: Annotated[int, QueryInt(1, 200)] = 20
    cursor: Annotated[
        str,
        Text(
            60,
            pattern=CURSOR_PATTERN,
            message="Use the `next` of the previous answer.",
            description="`next` of the previous answer (same type, provider and from): the "
            "slots after it, out to the horizon.",
        ),
    ] = ""


class AppointmentQuery(Query):
    model_config = ConfigDict(populate_by_name=True)

    provider_id: Id = ""
    patient_id: Id = ""
    from_: Instant = Field(default="", alias="from", description="Appointments ending after.")
    to: Instant = Field(default="", description="Appointments starting before.")


class IdempotencyHeaders(Query):
    idempotency_key: Annotated[
        str,
        Text(
            200,
            description="Any string up to 200 characters, unique per booking attempt: the same "
            "key with the same body answers the same appointment again (a retry never books "
            "twice); with another body, 409 IDEMPOTENCY_KEY_REUSED.",
        ),
    ] = Field(default="", alias="Idempotency-Key")


# --- Responses ----------------------------------------------------------------------------------


class Provider(Response):
    id: Uuid
    display_name: str
    active: bool


class ProviderList(Response):
    items: list[Provider]


class WeeklyHours(Response):
    weekday: Weekday
    start: str
    end: str


class WorkingHours(Response):
    provider_id: Uuid
    weekly: list[WeeklyHours]
    time_zone: str = Field(description="The clinic's IANA zone the clock times are read in.")


class TimeOff(Response):
    id: Uuid
    provider_id: Uuid
    start: At
    end: At
    reason: str


class AppointmentType(Response):
    id: Uuid
    name: str
    duration_minutes: int
    slot_interval_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    minimum_notice_minutes: int
    horizon_days: int
    cancellation_notice_minutes: int
    bookable_online: bool
    provider_ids: list[Uuid]


class AppointmentTypeList(Response):
    items: list[AppointmentType]


class Slot(Response):
    provider_id: Uuid
    provider_name: str
    start: At
    end: At


class SlotList(Response):
    slots: list[Slot] = Field(description="Soonest first, then by provider.")
    next: str | None = Field(
        description="Send as `cursor` for the slots after these; null when the horizon is "
        "exhausted."
    )
    time_zone: str


class Appointment(Response):
    id: Uuid
    status: Status
    patient_id: Uuid
    provider_id: Uuid
    provider_name: str
    appointment_type_id: Uuid
    appointment_type_name: str
    start: At
    end: At
    cancellation_reason: str
    cancellable_until: At = Field(
        description="Patients may cancel or reschedule online until then."
    )
    created_at: At
    updated_at: At


class AppointmentList(Response):
    items: list[Appointment] = Field(description="By start.")
