"""The patient's own appointments: bookable types, Find Available, book (idempotent), list,
cancel, reschedule and the calendar file.

No operation takes a patient id: scheduling takes the patient from the signed principal, lists
only their appointments and answers NOT_FOUND (404) for anyone else's.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import ics
from services.gateway.api import scheduling_convert as convert
from services.gateway.api import scheduling_models as m
from services.gateway.api.operation import Answer, Call, Header, Operation, Reply, path_id
from services.gateway.api.scheduling import (
    KEY,
    SLOT_409,
    availability,
    book_request,
    cancel_appointment,
    idempotency_key,
    meta,
    one,
    rpc,
    slots_refused,
)
from services.gateway.context import SETTINGS

BASE = "/api/v1/portal"
APPOINTMENT = BASE + "/appointments/{appointment_id}"
CALENDAR = "text/calendar"


async def my_types(call: Call[None, None]) -> Reply:
    found = await rpc(call).ListAppointmentTypes(
        pb.ListAppointmentTypesRequest(bookable_online_only=True), metadata=meta(call)
    )
    return Reply(m.AppointmentTypeList(items=[convert.appointment_type(t) for t in found.items]))


async def book_mine(call: Call[m.MyNewAppointment, None]) -> Reply:
    request = book_request(call.body, idempotency_key(call.request))
    found = await slots_refused(call, rpc(call).BookAppointment(request, metadata=meta(call)))
    return one(call, found, 201)


async def my_appointments(call: Call[None, None]) -> Reply:
    found = await rpc(call).ListAppointments(pb.ListAppointmentsRequest(), metadata=meta(call))
    tz = convert.zone(call.request)
    return Reply(m.AppointmentList(items=[convert.appointment(a, tz) for a in found.items]))


async def reschedule(call: Call[m.Reschedule, None]) -> Reply:
    request = pb.RescheduleAppointmentRequest(
        appointment_id=path_id(call, "appointment_id", "appointment"),
        provider_id=call.body.provider_id,
        start=convert.to_timestamp(call.body.start),
    )
    found = await slots_refused(call, rpc(call).RescheduleAppointment(request, metadata=meta(call)))
    return one(call, found)


async def calendar_file(call: Call[None, None]) -> Reply:
    found = await rpc(call).GetAppointment(
        pb.GetAppointmentRequest(appointment_id=path_id(call, "appointment_id", "appointment")),
        metadata=meta(call),
    )
    settings = call.request.app[SETTINGS]
    data = ics.appointment_ics(
        found, settings.clinic_name, urlsplit(settings.onsite_url).hostname or "portal"
    )
    return Reply(
        raw=web.Response(
            body=data,
            content_type=CALENDAR,
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="appointment.ics"'},
        )
    )


def operations() -> list[Operation]:
    tag = "portal-scheduling"
    return [
        Operation(
            "GET",
            BASE + "/appointment-types",
            my_types,
            "listMyAppointmentTypes",
            "The appointment types patients may book online",
            tag,
            "patient",
            answers=(
                Answer(200, "By name; provider_ids lists active ones.", m.AppointmentTypeList),
            ),
        ),
        Operation(
            "GET",
            BASE + "/availability",
            availability,
            "findMyAvailability",
            "Find Available for a type patients may book (same shape as staff's)",
            tag,
            "patient",
            description="Soonest first, from now + the type's minimum notice to its horizon; "
            "`next` pages on (send it as `cursor`); no time overlapping one of the patient's "
            "own appointments. A type not bookable online is 404, and so is a `provider_id` "
            "that names no provider.",
            query=m.AvailabilityQuery,
            answers=(Answer(200, "Free times.", m.SlotList),),
            problems=(404,),
        ),
        Operation(
            "POST",
            BASE + "/appointments",
            book_mine,
            "bookMyAppointment",
            "Confirm Appointment: book one of the free times for oneself",
            tag,
            "patient",
            description=f"Send an `{KEY}` header (any string up to 200 characters, new for each "
            "booking) so a retry after a lost answer books nothing twice: the same key with "
            "the same body answers 201 with the same appointment; with another body, 409 "
            "IDEMPOTENCY_KEY_REUSED. " + SLOT_409,
            body=m.MyNewAppointment,
            headers=m.IdempotencyHeaders,
            answers=(Answer(201, "Booked (or the booking this key made before).", m.Appointment),),
            problems=(404, 409),
        ),
        Operation(
            "GET",
            BASE + "/appointments",
            my_appointments,
            "listMyAppointments",
            "The patient's own appointments, past and upcoming (every status)",
            tag,
            "patient",
            answers=(Answer(200, "By start.", m.AppointmentList),),
        ),
        Operation(
            "POST",
            APPOINTMENT + "/cancel",
            cancel_appointment,
            "cancelMyAppointment",
            "Cancel one's own appointment (until its cancellation notice begins)",
            tag,
            "patient",
            description="409 CANCELLATION_TOO_LATE: within the type's cancellation notice "
            "(call the clinic); NOT_CANCELLABLE: it is no longer booked. Another patient's "
            "appointment is 404.",
            body=m.Cancellation,
            body_required=False,
            answers=(Answer(200, "Cancelled.", m.Appointment),),
            problems=(409,),
        ),
        Operation(
            "POST",
            APPOINTMENT + "/reschedule",
            reschedule,
            "rescheduleMyAppointment",
            "Move one's own appointment to another free time",
            tag,
            "patient",
            description="Atomic, and the appointment keeps its id: the old time is released "
            "only when the new one is booked; when the new time is taken nothing changes. "
            "409 CANCELLATION_TOO_LATE as for cancel; NOT_BOOKABLE_ONLINE: a type patients "
            "cannot book online (staff booked it) is moved only by the clinic. " + SLOT_409,
            body=m.Reschedule,
            answers=(Answer(200, "Moved (same id).", m.Appointment),),
            problems=(409,),
        ),
        Operation(
            "GET",
            APPOINTMENT + "/calendar.ics",
            calendar_file,
            "getMyAppointmentCalendar",
            "Add to calendar: the appointment as an iCalendar file",
            tag,
            "patient",
            answers=(
                Answer(
                    200,
                    "RFC 5545 iCalendar (text/calendar), one VEVENT in UTC whose UID stays the "
                    "same when the appointment moves.",
                    media_types=(CALENDAR,),
                    headers={"Content-Disposition": Header("attachment; filename=appointment.ics")},
                ),
            ),
        ),
    ]
