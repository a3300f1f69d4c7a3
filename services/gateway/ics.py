""" "Add to calendar": one appointment as an RFC 5545 iCalendar file.

The file leaves the portal for the patient's own calendar (and wherever that syncs), so it says
no more than the appointment type, the clinic and the times: no names, no reasons, no provider.
Times are in UTC; the icalendar library escapes and folds the text.
"""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway.clinic_time import instant

PRODID = "-//Patient Portal//Appointments//EN"


def appointment_ics(item: pb.Appointment, clinic_name: str, uid_domain: str) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    event = icalendar.Event()
    # The appointment keeps its id when rescheduled, so a re-import updates the same event.
    event.add("uid", f"appointment-{item.id}@{uid_domain}")
    event.add("dtstamp", datetime.now(UTC))
    event.add("dtstart", instant(item.start))
    event.add("dtend", instant(item.end))
    event.add("summary", f"{item.appointment_type_name} at {clinic_name}")
    event.add("location", clinic_name)
    cancelled = item.status == pb.APPOINTMENT_STATUS_CANCELLED
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if item.HasField("updated_at"):
        # SEQUENCE grows with every change, so calendars take the newer copy.
        event.add("sequence", max(0, item.updated_at.seconds - item.created_at.seconds))
    calendar.add_component(event)
    return bytes(calendar.to_ical())
