"""Scheduling's pages through the real stack, as a browser sends them (cookies, CSRF, redirects):
staff set up a provider, hours and a type; a patient finds and confirms a time; staff see it in
the calendar and the chart; the patient cancels and the time is free again; another patient
cannot open or cancel it; the calendar file is valid RFC 5545. Then the patient's pages beyond
that path: the search while rescheduling, the review's word on the cancellation notice, the
hints when nothing is free, the appointment page's cancel deadline and deliberate cancel step."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import icalendar
import pytest

from tests.system.conftest import (
    RunningStack,
    known_to_scheduling,
    not_yet_known,
)
from tests.system.test_patient_portal import client, issue_credentials
from tests.system.test_staff_pages import Browser

NEW_PASSWORD = "Juniper-Kettle-Morning-42"
SLOT = re.compile(r'name="slot" value="([^"]+)"')
PROVIDER_LINK = re.compile(r'href="/staff/practice/providers/([0-9a-f-]{36})"')
PROVIDER_OPTION = re.compile(r'<option value="([0-9a-f-]{36})"')
BASE = "/portal/onsite/appointments"


@pytest.fixture
async def staff(stack: RunningStack) -> AsyncIterator[Browser]:
    async with client() as http:
        b = Browser(http, stack.url)
        page = await b.sign_in("admin", stack.admin_password)
        assert page.status == 200, page.text[:500]
        yield b


async def patient_browser(
    stack: RunningStack, http: aiohttp.ClientSession
) -> tuple[Browser, dict[str, Any]]:
    """A new patient signed in to the onsite portal (the issued password changed)."""
    patient, issued = await issue_credentials(stack)
    b = Browser(http, stack.url)
    await b.get("/portal/onsite/login")
    page = await b.post(
        "/portal/onsite/login", {"username": issued["username"], "password": issued["password"]}
    )
    assert page.url.endswith("/portal/onsite/password"), page.url
    page = await b.post(
        "/portal/onsite/password",
        {
            "current_password": issued["password"],
            "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD,
        },
    )
    assert "/portal/onsite/home" in page.url, page.text[:500]
    return b, patient


async def set_up_clinic(staff: Browser, **fields: str) -> tuple[str, str, str]:
    """A provider open all week, round the clock, and an online type only they offer
    (`fields` override the type's form fields)."""
    provider_id = await add_provider(staff)
    all_day = "00:00-12:00, 12:00-24:00"
    hours = {f"hours_{d}": all_day for d in ("monday", "tuesday", "wednesday", "thursday")}
    hours.update({f"hours_{d}": all_day for d in ("friday", "saturday", "sunday")})
    page = await staff.post(f"/staff/practice/providers/{provider_id}/hours", hours)
    assert "Weekly hours saved." in page.text, page.text[:2000]
    assert 'value="00:00-12:00, 12:00-24:00"' in page.text

    # A malformed range stays on the page, next to its field.
    page = await staff.post(
        f"/staff/practice/providers/{provider_id}/hours", {**hours, "hours_monday": "9 to 5"}
    )
    assert page.status == 400 and 'id="f-hours_monday-error"' in page.text

    type_id, type_name = await add_type(staff, provider_id, **fields)
    return provider_id, type_id, type_name


async def add_provider(staff: Browser, name: str = "") -> str:
    """A new provider (no working hours yet); their id."""
    await staff.get("/staff/practice/providers")
    page = await staff.post(
        "/staff/practice/providers", {"display_name": name or f"Dr. Test {uuid.uuid4().hex[:6]}"}
    )
    assert page.status == 200 and "Provider added." in page.text, page.text[:1000]
    return page.url.rsplit("/", 1)[-1]


async def add_type(staff: Browser, provider_id: str, **fields: str) -> tuple[str, str]:
    """An online appointment type `provider_id` offers: its id and name."""
    type_name = f"Check-up {uuid.uuid4().hex[:6]}"
    await staff.get("/staff/practice/appointment-types/new")
    page = await staff.post(
        "/staff/practice/appointment-types/new",
        {
            "name": type_name,
            "duration_minutes": "30",
            "slot_interval_minutes": "30",
            "buffer_after_minutes": "0",
            "minimum_notice_minutes": "0",
            "horizon_days": "14",
            "cancellation_notice_minutes": "0",
            "bookable_online": "1",
            "provider_ids": provider_id,
            **fields,
        },
    )
    assert page.status == 200 and "Appointment type saved." in page.text, page.text[:2000]
    found = re.search(
        rf'/staff/practice/appointment-types/([0-9a-f-]{{36}})">{type_name}<', page.text
    )
    assert found, page.text[:3000]
    return found[1], type_name


async def test_patient_books_staff_see_it_patient_cancels(
    stack: RunningStack, staff: Browser
) -> None:
    provider_id, type_id, type_name = await set_up_clinic(staff)

    async with client() as http, client() as other_http:
        patient, record = await patient_browser(stack, http)
        page = await patient.get("/portal/onsite/appointments")
        assert page.status == 200 and "Find Available" in page.text
        assert f'value="{type_id}"' in page.text  # bookable online: in the drop-down

        # Find Available → the soonest times, grouped by day.
        query = f"type={type_id}&provider={provider_id}"
        page = await patient.get(f"/portal/onsite/appointments/find?{query}")
        assert page.status == 200, page.text[:2000]
        slots = SLOT.findall(page.text)
        assert slots and '<fieldset class="slot-day">' in page.text
        chosen = html.unescape(slots[0])
        assert "Show more times" in page.text

        # Review, then Confirm Appointment: POST, 303, the appointment's page.
        page = await patient.get(f"/portal/onsite/appointments/review?type={type_id}&slot={chosen}")
        assert page.status == 200 and "Confirm Appointment" in page.text
        key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
        assert key
        form = {"type": type_id, "slot": chosen, "idempotency_key": key[1]}
        page = await patient.post("/portal/onsite/appointments", form, follow=False)
        assert page.status == 303, page.text[:2000]
        appointment_url = page.url.split("?")[0]
        appointment_id = appointment_url.rsplit("/", 1)[-1]
        page = await patient.get(page.url)
        assert "Your appointment is booked." in page.text and type_name in page.text

        # The same form again (a double click) is the same appointment, not a second one.
        again = await patient.post("/portal/onsite/appointments", form, follow=False)
        assert again.status == 303 and again.url.split("?")[0] == appointment_url

        # Someone else's attempt at that time: a clear message and fresh times, no error page.
        other, _ = await patient_browser(stack, other_http)
        await other.get("/portal/onsite/appointments")
        taken = await other.post(
            "/portal/onsite/appointments",
            {"type": type_id, "slot": chosen, "idempotency_key": str(uuid.uuid4())},
        )
        assert taken.status == 409 and "just taken" in taken.text, taken.text[:2000]
        assert SLOT.findall(taken.text) and chosen not in SLOT.findall(taken.text)

        # Another patient can neither open nor cancel it, nor download its calendar file.
        base = f"/portal/onsite/appointments/{appointment_id}"
        assert (await other.get(base)).status == 404
        assert (await other.get(base + "/calendar.ics")).status == 404
        assert (await other.get(base + "/cancel")).status == 404
        assert (await other.post(base + "/cancel", {"reason": ""})).status == 404

        # Add to calendar: valid RFC 5545, UTC times, no name in it.
        async with http.get(stack.url + base + "/calendar.ics") as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/calendar")
            body = await reply.read()
        event = check_ics(body, appointment_id, type_name)
        assert record["last_name"] not in body.decode()

        # Staff: the calendar of that day shows it, with the patient's chart link.
        day = event.decoded("dtstart").astimezone(stack_zone()).date().isoformat()
        page = await staff.get(f"/staff/practice/calendar?provider={provider_id}&date={day}")
        assert f"/staff/appointments/{appointment_id}" in page.text, page.text[:3000]
        assert f"/staff/patients/{record['id']}" in page.text
        assert f"{record['last_name']}, {record['first_name']}" in page.text  # one batch lookup
        page = await staff.get(f"/staff/practice/calendar?date={day}")  # every provider
        assert f"/staff/appointments/{appointment_id}" in page.text
        page = await staff.get(
            f"/staff/practice/calendar?view=week&provider={provider_id}&date={day}"
        )
        assert f"/staff/appointments/{appointment_id}" in page.text
        # ... and the chart's Appointments section.
        page = await staff.get(f"/staff/patients/{record['id']}")
        assert (
            f"/staff/appointments/{appointment_id}" in page.text and "Book appointment" in page.text
        )

        # The patient cancels (a reason is optional); the time is offered again.
        await patient.get(base)
        page = await patient.post(base + "/cancel", {"reason": ""}, follow=False)
        assert page.status == 303 and page.url.endswith("appointments?notice=cancelled")
        page = await patient.get(page.url)
        assert "Your appointment has been cancelled." in page.text
        page = await patient.get(f"/portal/onsite/appointments/find?{query}")
        assert chosen in [html.unescape(s) for s in SLOT.findall(page.text)]


async def test_staff_book_from_chart_reschedule_mark_and_cancel(
    stack: RunningStack, staff: Browser
) -> None:
    provider_id, type_id, _ = await set_up_clinic(staff)
    async with client() as http:
        _, record = await patient_browser(stack, http)
    pid = record["id"]
    await known_to_scheduling(stack, pid)

    page = await staff.get(f"/staff/patients/{pid}/appointments/book")
    assert page.status == 200 and "Find Available" in page.text
    page = await staff.get(
        f"/staff/patients/{pid}/appointments/book?type={type_id}&provider={provider_id}"
    )
    slots = [html.unescape(s) for s in SLOT.findall(page.text)]
    assert len(slots) >= 2 and "Confirm Appointment" in page.text
    # A provider id that names no provider (an edited address) points at the provider field.
    wrong = await staff.get(
        f"/staff/patients/{pid}/appointments/book?type={type_id}&provider={uuid.uuid4()}"
    )
    assert wrong.status == 400 and "Choose a provider from the list." in wrong.text
    # Scheduling has not handled the patient's registration yet (its row taken away here):
    # the page asks to try again, with the times still offered.
    async with not_yet_known(stack, pid):
        page = await staff.post(
            f"/staff/patients/{pid}/appointments",
            {"type": type_id, "slot": slots[0], "idempotency_key": str(uuid.uuid4())},
        )
        assert page.status == 409 and "registered moments ago" in page.text, page.text[:2000]
        assert "Confirm Appointment" in page.text
    page = await staff.post(
        f"/staff/patients/{pid}/appointments",
        {"type": type_id, "slot": slots[0], "idempotency_key": str(uuid.uuid4())},
    )
    assert page.url.endswith(f"/staff/patients/{pid}") and "Appointment booked." in page.text
    found = re.search(r'href="/staff/appointments/([0-9a-f-]{36})"', page.text)
    assert found
    one = f"/staff/appointments/{found[1]}"

    page = await staff.get(one + f"/reschedule?provider={provider_id}")
    assert "Move appointment" in page.text
    page = await staff.post(one + "/reschedule", {"slot": slots[1]})
    assert "Appointment moved to the new time." in page.text, page.text[:2000]
    # Staff may move it to any time inside the hours: two days ahead, it takes no visit status.
    noon = datetime.now(stack_zone()).replace(hour=12, minute=0, second=0, microsecond=0)
    ahead = f"{provider_id}|{int((noon + timedelta(days=2)).timestamp())}"
    page = await staff.post(one + "/reschedule", {"slot": ahead})
    assert "Appointment moved to the new time." in page.text, page.text[:2000]
    assert "Mark arrived" not in page.text and "from the day of the appointment" in page.text
    page = await staff.post(one + "/status", {"status": "arrived"})
    assert page.status == 409 and "only on its day" in page.text
    # Yesterday, in the clinic: the visit can be recorded.
    behind = f"{provider_id}|{int((noon - timedelta(days=1)).timestamp())}"
    page = await staff.post(one + "/reschedule", {"slot": behind})
    assert "Appointment moved to the new time." in page.text, page.text[:2000]
    page = await staff.post(one + "/status", {"status": "arrived"})
    assert "Appointment status updated." in page.text and "Arrived" in page.text
    # Arrived is no longer cancellable; the page says why instead of failing.
    page = await staff.post(one + "/cancel", {"reason": "x"})
    assert page.status == 409 and "can no longer be changed" in page.text
    page = await staff.post(one + "/status", {"status": "fulfilled"})
    assert "Fulfilled" in page.text
    assert (await staff.get("/staff/appointments/" + str(uuid.uuid4()))).status == 404


def days_ahead(days: int) -> date:
    return datetime.now(stack_zone()).date() + timedelta(days=days)


def start_of(slot: str) -> datetime:
    return datetime.fromtimestamp(int(slot.split("|")[1]), stack_zone())


async def free_slots(patient: Browser, query: str) -> list[str]:
    page = await patient.get(f"{BASE}/find?{query}")
    assert page.status == 200, page.text[:2000]
    return [html.unescape(s) for s in SLOT.findall(page.text)]


async def book(patient: Browser, type_id: str, slot: str) -> str:
    """Review and Confirm Appointment; the new appointment's id."""
    page = await patient.get(f"{BASE}/review?type={type_id}&slot={slot}")
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert key, page.text[:2000]
    form = {"type": type_id, "slot": slot, "idempotency_key": key[1]}
    page = await patient.post(BASE, form, follow=False)
    assert page.status == 303, page.text[:2000]
    return page.url.split("?")[0].rsplit("/", 1)[-1]


def search_form(text: str) -> str:
    """The "Change the search" section of a results page."""
    assert ">Change the search</h2>" in text, text[:3000]
    return text.split(">Change the search</h2>", 1)[1].split("</section>", 1)[0]


async def test_reschedule_search_offers_provider_and_date(
    stack: RunningStack, staff: Browser
) -> None:
    provider_id, type_id, type_name = await set_up_clinic(staff)
    other_id = await add_provider(staff)  # offers no type
    async with client() as http:
        patient, _ = await patient_browser(stack, http)

        # After Find Available the provider list names only those offering the type.
        page = await patient.get(f"{BASE}/find?type={type_id}")
        offered = PROVIDER_OPTION.findall(search_form(page.text))
        assert provider_id in offered and other_id not in offered

        appointment_id = await book(
            patient, type_id, (await free_slots(patient, f"type={type_id}"))[0]
        )
        page = await patient.get(f"{BASE}/find?reschedule={appointment_id}")
        assert page.status == 200 and "Choose a new time" in page.text
        form = search_form(page.text)
        # The type stays (shown, not choosable); provider and earliest date can be chosen.
        assert type_name in form and 'name="type"' not in form
        assert f'name="reschedule" value="{appointment_id}"' in form
        offered = PROVIDER_OPTION.findall(form)
        assert provider_id in offered and other_id not in offered
        assert 'name="from"' in form

        later = days_ahead(5)
        query = f"reschedule={appointment_id}&provider={provider_id}&from={later}"
        slots = await free_slots(patient, query)
        assert slots and all(start_of(s).date() >= later for s in slots)
        # A malformed date is shown next to the field of the same form.
        page = await patient.get(f"{BASE}/find?reschedule={appointment_id}&from=tomorrow")
        assert 'id="f-from-error"' in search_form(page.text)


async def test_review_warns_when_inside_the_cancellation_notice(
    stack: RunningStack, staff: Browser
) -> None:
    _, type_id, _ = await set_up_clinic(staff, cancellation_notice_minutes="4320")
    async with client() as http:
        patient, _ = await patient_browser(stack, http)
        soonest = (await free_slots(patient, f"type={type_id}"))[0]
        page = await patient.get(f"{BASE}/review?type={type_id}&slot={soonest}")
        assert page.status == 200
        assert "Once you confirm, this appointment cannot be cancelled or changed online" in (
            page.text
        )
        assert "until 3 days before it starts" not in page.text

        later = (await free_slots(patient, f"type={type_id}&from={days_ahead(5)}"))[0]
        page = await patient.get(f"{BASE}/review?type={type_id}&slot={later}")
        assert "You can cancel or change this appointment here until 3 days before" in page.text
        assert "cannot be cancelled or changed online" not in page.text


async def test_no_free_times_say_why(stack: RunningStack, staff: Browser) -> None:
    _, type_id, type_name = await set_up_clinic(staff)
    idle_name = f"Dr. Idle {type_id[:6]}"
    idle_id = await add_provider(staff, idle_name)  # no working hours
    idle_type, _ = await add_type(staff, idle_id)
    async with client() as http:
        patient, _ = await patient_browser(stack, http)

        page = await patient.get(f"{BASE}/find?type={type_id}&provider={idle_id}")
        assert f"{idle_name} does not offer {type_name}." in page.text
        assert "Choose another provider or any provider." in page.text
        assert "earlier date" not in page.text

        page = await patient.get(f"{BASE}/find?type={type_id}&from={days_ahead(30)}")
        assert "Times can be booked up to 14 days ahead: choose an earlier date." in page.text

        page = await patient.get(f"{BASE}/find?type={idle_type}")
        assert "No free times were found" in page.text and "earlier date" not in page.text
        page = await patient.get(f"{BASE}/find?type={idle_type}&provider={idle_id}")
        assert f"No free times were found with {idle_name}" in page.text
        assert "earlier date" not in page.text


async def test_appointment_page_says_until_when_and_cancel_is_deliberate(
    stack: RunningStack, staff: Browser
) -> None:
    _, type_id, _ = await set_up_clinic(staff, cancellation_notice_minutes="60")
    async with client() as http:
        patient, _ = await patient_browser(stack, http)
        slot = (await free_slots(patient, f"type={type_id}&from={days_ahead(2)}"))[0]
        one = f"{BASE}/{await book(patient, type_id, slot)}"

        page = await patient.get(one)
        until = start_of(slot) - timedelta(minutes=60)
        assert "You can cancel or change this appointment online until" in page.text
        assert f'<time datetime="{until.isoformat(timespec="minutes")}">' in page.text
        # Cancelling is a step of its own: the appointment page only leads to it.
        assert f'action="{one}/cancel"' not in page.text
        assert f'href="{one}/cancel"' in page.text

        page = await patient.get(one + "/cancel")
        assert page.status == 200 and f'action="{one}/cancel"' in page.text
        assert re.search(r'<textarea[^>]*name="reason"[^>]*maxlength="500"', page.text)
        assert f'href="{one}"' in page.text  # keep it
        # The service still checks the length (a client need not honour maxlength).
        page = await patient.post(one + "/cancel", {"reason": "x" * 501})
        assert page.status == 400 and "at most 500 characters" in page.text
        assert f'action="{one}/cancel"' in page.text

        page = await patient.post(one + "/cancel", {"reason": "Feeling better"}, follow=False)
        assert page.status == 303 and page.url.endswith("appointments?notice=cancelled")
        page = await patient.get(one)
        assert "Feeling better" in page.text and f'href="{one}/cancel"' not in page.text
        assert "You can cancel or change" not in page.text
        page = await patient.get(one + "/cancel")  # nothing left to cancel
        assert f'action="{one}/cancel"' not in page.text


async def test_only_the_clinic_moves_a_type_patients_cannot_book(
    stack: RunningStack, staff: Browser
) -> None:
    """Staff book a type that is not bookable online: the patient may cancel it, not move it."""
    provider_id, type_id, _ = await set_up_clinic(staff, bookable_online="")
    async with client() as http:
        patient, record = await patient_browser(stack, http)
        await known_to_scheduling(stack, record["id"])
        noon = datetime.combine(days_ahead(2), time(12), stack_zone())
        ahead = f"{provider_id}|{int(noon.timestamp())}"
        page = await staff.post(
            f"/staff/patients/{record['id']}/appointments",
            {"type": type_id, "slot": ahead, "idempotency_key": str(uuid.uuid4())},
        )
        assert "Appointment booked." in page.text, page.text[:2000]
        found = re.search(r'href="/staff/appointments/([0-9a-f-]{36})"', page.text)
        assert found
        one = f"{BASE}/{found[1]}"

        page = await patient.get(one)
        assert "To move it to another time, please call the clinic." in page.text
        assert "Reschedule" not in page.text and f'href="{one}/cancel"' in page.text
        # An address typed by hand says so instead of an empty search.
        page = await patient.get(f"{BASE}/find?reschedule={found[1]}")
        assert page.status == 409 and "Only the clinic can move this appointment." in page.text


def stack_zone() -> ZoneInfo:
    return ZoneInfo("America/New_York")  # tests/system/conftest.py's clinic zone


def check_ics(body: bytes, appointment_id: str, type_name: str) -> icalendar.Event:
    calendar = icalendar.Calendar.from_ical(body)
    assert calendar["VERSION"] == "2.0" and calendar.get("PRODID")
    events = list(calendar.walk("VEVENT"))
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, icalendar.Event)
    assert str(event["UID"]).startswith(f"appointment-{appointment_id}@")
    for name in ("DTSTAMP", "DTSTART", "DTEND"):
        value = event.decoded(name)
        assert isinstance(value, datetime) and value.utcoffset() == UTC.utcoffset(None)
    assert event.decoded("dtend") > event.decoded("dtstart")
    assert str(event["SUMMARY"]) == f"{type_name} at Demo Clinic"
    text = body.decode()
    assert "\r\n" in text and all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    return event
