"""The staff scheduling API: providers, working hours, time off, appointment types, Find
Available, and appointments for any patient (book, list, cancel, arrived / no-show / fulfilled).

The patient's own operations are in scheduling_portal.py; both speak scheduling's gRPC API and
share the conversions of scheduling_convert.py.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import grpc
from aiohttp import web
from pydantic import ValidationError

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import auth
from services.gateway.api import scheduling_convert as convert
from services.gateway.api import scheduling_models as m
from services.gateway.api.json_io import validation_problem
from services.gateway.api.operation import Answer, Call, Operation, Reply, not_found, path_id
from services.gateway.api.patients import identity_patient, of_known_patient
from services.gateway.context import BACKENDS
from services.gateway.schedule_view import PATIENT_NOT_READY_TEXT
from services.gateway.security import Problem
from services.gateway.staff_roles import AVAILABILITY, PRACTICE_SETUP
from services.runtime.errors import not_found_kind

T = TypeVar("T")
BASE = "/api/v1"
KEY = "Idempotency-Key"
PATIENT_RETRY_AFTER = "2"  # seconds: scheduling hears of a new patient within moments
PROVIDER = BASE + "/providers/{provider_id}"
APPOINTMENT = BASE + "/appointments/{appointment_id}"
SLOT_409 = (
    "409 `code` SLOT_TAKEN (just booked by someone else) or SLOT_UNAVAILABLE (not an offered "
    "time) carries `alternatives`: free times (the Slot shape of the availability answer) to "
    "offer instead. PATIENT_BUSY: the patient has another appointment at that time (with any "
    "provider). Other 409 codes: PROVIDER_INACTIVE, NOT_OFFERED, IDEMPOTENCY_KEY_REUSED."
)
STATUS_ENUM = {
    "arrived": pb.APPOINTMENT_STATUS_ARRIVED,
    "noshow": pb.APPOINTMENT_STATUS_NOSHOW,
    "fulfilled": pb.APPOINTMENT_STATUS_FULFILLED,
}


async def slots_refused(call: Call[Any, Any], pending: Awaitable[T]) -> T:
    """The service's answer; a refused time becomes the 409 with alternatives."""
    try:
        return await pending
    except grpc.aio.AioRpcError as exc:
        problem = convert.slot_problem(exc, convert.zone(call.request))
        if problem is None:
            raise
        raise problem from None


def rpc(call: Call[Any, Any]) -> Any:
    """Scheduling's stub (typed in the .pyi only) and the caller's metadata."""
    return call.request.app[BACKENDS].scheduling


def meta(call: Call[Any, Any]) -> tuple[tuple[str, str], ...]:
    return auth.metadata(call.request, call.caller)


def availability_request(query: m.AvailabilityQuery) -> pb.FindAvailabilityRequest:
    request = pb.FindAvailabilityRequest(
        appointment_type_id=query.appointment_type_id,
        provider_id=query.provider_id,
        limit=query.limit,
        page_token=query.cursor,
    )
    if query.from_:
        getattr(request, "from").CopyFrom(convert.to_timestamp(query.from_))
    return request


async def availability(call: Call[None, m.AvailabilityQuery]) -> Reply:
    found = await rpc(call).FindAvailability(availability_request(call.query), metadata=meta(call))
    tz = convert.zone(call.request)
    return Reply(
        m.SlotList(
            slots=[convert.slot(s, tz) for s in found.slots],
            next=found.next_page_token or None,
            time_zone=found.time_zone,
        )
    )


def idempotency_key(request: web.Request) -> str:
    sent = {KEY: request.headers[KEY]} if KEY in request.headers else {}
    try:
        return m.IdempotencyHeaders.model_validate(sent).idempotency_key.strip()
    except ValidationError as exc:
        raise validation_problem(exc) from None


def book_request(
    body: m.MyNewAppointment, key: str, patient_id: str = ""
) -> pb.BookAppointmentRequest:
    return pb.BookAppointmentRequest(
        patient_id=patient_id,
        appointment_type_id=body.appointment_type_id,
        provider_id=body.provider_id,
        start=convert.to_timestamp(body.start),
        idempotency_key=key,
    )


def one(call: Call[Any, Any], found: pb.Appointment, status: int = 200) -> Reply:
    return Reply(convert.appointment(found, convert.zone(call.request)), status=status)


async def cancel_appointment(call: Call[m.Cancellation, None]) -> Reply:
    found = await rpc(call).CancelAppointment(
        pb.CancelAppointmentRequest(
            appointment_id=path_id(call, "appointment_id", "appointment"),
            reason=call.body.reason.strip(),
        ),
        metadata=meta(call),
    )
    return one(call, found)


# --- Staff handlers -----------------------------------------------------------------------------


async def create_provider(call: Call[m.NewProvider, None]) -> Reply:
    found = await rpc(call).CreateProvider(
        pb.CreateProviderRequest(display_name=call.body.display_name.strip()), metadata=meta(call)
    )
    return Reply(convert.provider(found), status=201)


async def change_provider(call: Call[m.ProviderChanges, None]) -> Reply:
    provider_id = path_id(call, "provider_id", "provider")
    body, sent = call.body, call.body.model_fields_set
    found: pb.Provider | None = None
    if "display_name" in sent:
        found = await rpc(call).RenameProvider(
            pb.RenameProviderRequest(
                provider_id=provider_id, display_name=body.display_name.strip()
            ),
            metadata=meta(call),
        )
    if "active" in sent:
        method = rpc(call).ReactivateProvider if body.active else rpc(call).DeactivateProvider
        kind = pb.ReactivateProviderRequest if body.active else pb.DeactivateProviderRequest
        found = await method(kind(provider_id=provider_id), metadata=meta(call))
    if found is None:  # the model refuses an empty change
        raise RuntimeError("no change to send")
    return Reply(convert.provider(found))


async def list_providers(call: Call[None, None]) -> Reply:
    found = await rpc(call).ListProviders(
        pb.ListProvidersRequest(include_inactive=True), metadata=meta(call)
    )
    return Reply(m.ProviderList(items=[convert.provider(p) for p in found.items]))


async def replace_hours(call: Call[m.WorkingHoursChange, None]) -> Reply:
    found = await rpc(call).ReplaceWorkingHours(
        pb.ReplaceWorkingHoursRequest(
            provider_id=path_id(call, "provider_id", "provider"),
            weekly=[
                pb.WeeklyRange(
                    weekday=convert.WEEKDAY_ENUM[r.weekday],  # type: ignore[arg-type]
                    start=r.start,
                    end=r.end,
                )
                for r in call.body.weekly
            ],
        ),
        metadata=meta(call),
    )
    return Reply(convert.working_hours(found))


async def add_time_off(call: Call[m.NewTimeOff, None]) -> Reply:
    body = call.body
    found = await rpc(call).AddTimeOff(
        pb.AddTimeOffRequest(
            provider_id=path_id(call, "provider_id", "provider"),
            start=convert.to_timestamp(body.start),
            end=convert.to_timestamp(body.end),
            reason=body.reason.strip(),
        ),
        metadata=meta(call),
    )
    return Reply(convert.time_off(found, convert.zone(call.request)), status=201)


async def create_type(call: Call[m.NewAppointmentType, None]) -> Reply:
    found = await rpc(call).CreateAppointmentType(
        pb.CreateAppointmentTypeRequest(fields=convert.type_fields(call.body)),
        metadata=meta(call),
    )
    return Reply(convert.appointment_type(found), status=201)


async def list_types(call: Call[None, None]) -> Reply:
    found = await rpc(call).ListAppointmentTypes(
        pb.ListAppointmentTypesRequest(), metadata=meta(call)
    )
    return Reply(m.AppointmentTypeList(items=[convert.appointment_type(t) for t in found.items]))


async def book(call: Call[m.NewAppointment, None]) -> Reply:
    request = book_request(call.body, idempotency_key(call.request), call.body.patient_id)
    try:
        found = await slots_refused(call, rpc(call).BookAppointment(request, metadata=meta(call)))
    except grpc.aio.AioRpcError as exc:
        if not_found_kind(exc) == "patient":
            await unknown_patient(call, request.patient_id)
        raise
    return one(call, found, 201)


async def unknown_patient(call: Call[Any, Any], patient_id: str) -> None:
    """Scheduling knows no such patient: 404, unless identity (which owns patients) knows it,
    registered moments ago and its event not yet handled by scheduling: then a 503 to retry.
    Asked only on this refusal, so a booking's success costs no call to identity."""
    try:
        await identity_patient(call, patient_id)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise not_found("patient") from None
        return  # identity cannot tell: scheduling's own answer stands
    raise Problem(
        503,
        "Patient not ready yet",
        PATIENT_NOT_READY_TEXT,
        code="PATIENT_NOT_READY",
        headers={"Retry-After": PATIENT_RETRY_AFTER},
    )


async def list_appointments(call: Call[None, m.AppointmentQuery]) -> Reply:
    query = call.query
    request = pb.ListAppointmentsRequest(
        provider_id=query.provider_id, patient_id=query.patient_id, limit=1000
    )
    if query.from_:
        getattr(request, "from").CopyFrom(convert.to_timestamp(query.from_))
    if query.to:
        request.to.CopyFrom(convert.to_timestamp(query.to))
    pending = rpc(call).ListAppointments(request, metadata=meta(call))
    if query.patient_id:  # scheduling lists nothing for an id identity does not know
        found = await of_known_patient(call, query.patient_id, pending)
    else:
        found = await pending
    tz = convert.zone(call.request)
    return Reply(m.AppointmentList(items=[convert.appointment(a, tz) for a in found.items]))


async def set_status(call: Call[m.StatusChange, None]) -> Reply:
    found = await rpc(call).SetAppointmentStatus(
        pb.SetAppointmentStatusRequest(
            appointment_id=path_id(call, "appointment_id", "appointment"),
            status=STATUS_ENUM[call.body.status],
        ),
        metadata=meta(call),
    )
    return one(call, found)


def operations() -> list[Operation]:
    def staff(
        method: str, path: str, handler: Any, operation_id: str, summary: str, **rest: Any
    ) -> Operation:
        return Operation(
            method, path, handler, operation_id, summary, "scheduling", "staff", **rest
        )

    return [
        staff(
            "POST",
            BASE + "/providers",
            create_provider,
            "createProvider",
            "Add a provider",
            description="409 NAME_TAKEN: an active provider has this name (any case).",
            body=m.NewProvider,
            answers=(Answer(201, "Added (active).", m.Provider),),
            problems=(409,),
            roles=PRACTICE_SETUP,
        ),
        staff(
            "PATCH",
            PROVIDER,
            change_provider,
            "changeProvider",
            "Rename, deactivate or reactivate a provider",
            description="A deactivated provider keeps their appointments (and their calendar) "
            "and offers no new times; reactivated, their hours offer times again. 409 "
            "NAME_TAKEN: an active provider has the new name, or (reactivating) the provider's "
            "name, whatever its case: rename one of them first.",
            body=m.ProviderChanges,
            answers=(Answer(200, "The provider as changed.", m.Provider),),
            problems=(409,),
            roles=PRACTICE_SETUP,
        ),
        staff(
            "GET",
            BASE + "/providers",
            list_providers,
            "listProviders",
            "Every provider, deactivated ones too",
            answers=(Answer(200, "By name.", m.ProviderList),),
        ),
        staff(
            "PUT",
            PROVIDER + "/working-hours",
            replace_hours,
            "replaceWorkingHours",
            "Replace a provider's weekly hours (clinic-local times)",
            body=m.WorkingHoursChange,
            answers=(Answer(200, "The new weekly hours.", m.WorkingHours),),
            roles=AVAILABILITY,
        ),
        staff(
            "POST",
            PROVIDER + "/time-off",
            add_time_off,
            "addTimeOff",
            "Block a provider's time (no times are offered during it)",
            body=m.NewTimeOff,
            answers=(Answer(201, "Added.", m.TimeOff),),
            roles=AVAILABILITY,
        ),
        staff(
            "POST",
            BASE + "/appointment-types",
            create_type,
            "createAppointmentType",
            "Add an appointment type",
            body=m.NewAppointmentType,
            answers=(Answer(201, "Added.", m.AppointmentType),),
            roles=PRACTICE_SETUP,
        ),
        staff(
            "GET",
            BASE + "/appointment-types",
            list_types,
            "listAppointmentTypes",
            "Every appointment type",
            answers=(Answer(200, "By name.", m.AppointmentTypeList),),
        ),
        staff(
            "GET",
            BASE + "/availability",
            availability,
            "findAvailability",
            "Find Available: the soonest free times of a type, across its providers",
            description="Soonest first, from now + the type's minimum notice to its horizon. "
            "`next` pages on (send it as `cursor`). 404: no such type, or `provider_id` names "
            "no provider (a provider who does not offer the type has no times).",
            query=m.AvailabilityQuery,
            answers=(Answer(200, "Free times.", m.SlotList),),
            problems=(404,),
        ),
        staff(
            "POST",
            BASE + "/appointments",
            book,
            "bookAppointment",
            "Book an appointment for a patient",
            description="Staff may book any time inside the provider's hours and clear of "
            f"time off and other appointments. An `{KEY}` header makes a retry safe, as for "
            "the patient's booking (keys are per staff member). 404: no such patient. 503 "
            "`code` PATIENT_NOT_READY (with `Retry-After`): the patient was registered moments "
            "ago and scheduling has not heard of it yet. " + SLOT_409,
            body=m.NewAppointment,
            headers=m.IdempotencyHeaders,
            answers=(Answer(201, "Booked.", m.Appointment),),
            problems=(404, 409),
        ),
        staff(
            "GET",
            BASE + "/appointments",
            list_appointments,
            "listAppointments",
            "Appointments of a provider and/or a patient in a period (every status)",
            description="404: `patient_id` names no patient, or `provider_id` no provider. "
            "400: `to` is not after `from`.",
            query=m.AppointmentQuery,
            answers=(Answer(200, "By start (at most 1000).", m.AppointmentList),),
            problems=(404,),
        ),
        staff(
            "POST",
            APPOINTMENT + "/cancel",
            cancel_appointment,
            "cancelAppointment",
            "Cancel an appointment (its time is free again)",
            description="Cancelling a cancelled appointment changes nothing. 409 "
            "NOT_CANCELLABLE: it is no longer booked.",
            body=m.Cancellation,
            body_required=False,
            answers=(Answer(200, "Cancelled.", m.Appointment),),
            problems=(409,),
        ),
        staff(
            "POST",
            APPOINTMENT + "/status",
            set_status,
            "setAppointmentStatus",
            "Mark an appointment arrived, no-show or fulfilled",
            description="409 STATUS_TRANSITION: not from its current status; "
            "STATUS_TOO_EARLY: arrived and fulfilled only from the start of the appointment's "
            "day in the clinic's time zone, no-show only once it was due.",
            body=m.StatusChange,
            answers=(Answer(200, "Changed.", m.Appointment),),
            problems=(409,),
        ),
    ]
