"""The staff scheduling pages' edges, through the real stack: dates out of any sane range are
field errors (or today, for a calendar address), never a 500; weekly-hours errors name the day
and link to its field; a cancelled appointment cannot be opened for moving; booking keeps to the
chosen type's providers, the chosen provider and the calendar's day; numbers read as people
write them; time off over booked appointments says they stay booked and lands on the calendar
where they show beside it; the calendar shows time off, closed days and days without hours."""

from __future__ import annotations

import html
import re
import uuid
from datetime import datetime, timedelta

from services.gateway.clinic_time import short_day
from tests.system import test_scheduling_pages
from tests.system.conftest import RunningStack, known_to_scheduling
from tests.system.test_patient_portal import client
from tests.system.test_scheduling_pages import (
    SLOT,
    days_ahead,
    patient_browser,
    set_up_clinic,
    stack_zone,
)
from tests.system.test_staff_pages import Browser

staff = test_scheduling_pages.staff  # the signed-in staff fixture
ALL_DAY = "00:00-24:00"
WEEK = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def summary_links(text: str) -> list[tuple[str, str]]:
    block = re.search(r'<div class="error-summary".*?</div>', text, re.S)
    assert block, text[:3000]
    return re.findall(r'<a href="(#[^"]+)">([^<]+)</a>', block[0])


async def add_provider(staff: Browser, name: str) -> str:
    await staff.get("/staff/practice/providers")
    page = await staff.post("/staff/practice/providers", {"display_name": name})
    assert "Provider added." in page.text, page.text[:1000]
    provider_id = page.url.rsplit("/", 1)[-1]
    hours = {f"hours_{d}": ALL_DAY for d in WEEK}
    page = await staff.post(f"/staff/practice/providers/{provider_id}/hours", hours)
    assert "Weekly hours saved." in page.text
    return provider_id


async def two_provider_type(staff: Browser, provider_ids: list[str]) -> str:
    """A type open to booking now, offered by every one of provider_ids (a repeated field)."""
    name = f"Shared {uuid.uuid4().hex[:6]}"
    await staff.get("/staff/practice/appointment-types/new")
    form = [
        ("csrf_token", staff.csrf),
        ("name", name),
        ("duration_minutes", "30"),
        ("minimum_notice_minutes", "0"),
        ("bookable_online", "1"),
    ] + [("provider_ids", p) for p in provider_ids]
    async with staff.http.post(
        staff.base + "/staff/practice/appointment-types/new", data=form
    ) as reply:
        text = await reply.text()
    found = re.search(rf'/staff/practice/appointment-types/([0-9a-f-]{{36}})">{name}<', text)
    assert found, text[:2000]
    return found[1]


async def book_soonest(staff: Browser, patient_id: str, type_id: str) -> str:
    """Staff book the soonest time of the type for the patient: the appointment's address."""
    book = f"/staff/patients/{patient_id}/appointments"
    slot = html.unescape(SLOT.findall((await staff.get(f"{book}/book?type={type_id}")).text)[0])
    form = {"type": type_id, "slot": slot, "idempotency_key": str(uuid.uuid4())}
    found = re.search(
        r'href="(/staff/appointments/[0-9a-f-]{36})"', (await staff.post(book, form)).text
    )
    assert found
    return found[1]


async def test_out_of_range_dates_are_field_errors_or_today_never_a_500(
    stack: RunningStack, staff: Browser
) -> None:
    provider_id, type_id, _ = await set_up_clinic(staff)
    for query in (
        "view=day&date=9999-12-31",
        "view=week&date=0001-01-01",
        f"view=week&provider={provider_id}&date=9999-12-31",
        "view=day&date=2199-12-31",
        "view=week&date=1970-01-01",
    ):
        page = await staff.get(f"/staff/practice/calendar?{query}")
        assert page.status == 200, (query, page.text[:500])

    base = f"/staff/practice/providers/{provider_id}"
    await staff.get(base)
    page = await staff.post(
        base + "/time-off", {"off_start": "0001-01-01T00:00", "off_end": "0001-01-01T01:00"}
    )
    assert page.status == 400 and 'id="f-off_start-error"' in page.text, page.text[:500]
    assert "Enter a date from 1970 to 2199" in page.text
    page = await staff.post(
        base + "/time-off", {"off_start": "9999-12-31T00:00", "off_end": "9999-12-31T01:00"}
    )
    assert page.status == 400 and 'id="f-off_end-error"' in page.text
    page = await staff.post(base + "/overrides", {"override_date": "9999-12-31"})
    assert page.status == 400 and 'id="f-override_date-error"' in page.text
    # 02:30 on 14 March 2027 does not exist in New York (the stack's zone): said, not moved.
    page = await staff.post(
        base + "/time-off", {"off_start": "2027-03-14T02:30", "off_end": "2027-03-14T04:00"}
    )
    assert page.status == 400 and "The clocks go forward over this time" in page.text

    async with client() as http:
        patient, record = await patient_browser(stack, http)
        # The patient's Find Available reads its earliest date through the same helper.
        page = await patient.get(f"/portal/onsite/appointments/find?type={type_id}&from=0001-01-01")
        assert page.status == 400 and "Enter a date from 1970 to 2199" in page.text
    pid = record["id"]
    await known_to_scheduling(stack, pid)
    for day in ("0001-01-01", "9999-12-31"):
        page = await staff.get(f"/staff/patients/{pid}/appointments/book?type={type_id}&from={day}")
        assert page.status == 400 and 'id="f-from-error"' in page.text, page.text[:500]
        assert "No free times found" not in page.text  # the error alone

    # Other dates typed into staff pages and turned into instants: the audit log's filter and a
    # chart form's due date.
    page = await staff.get("/staff/admin/audit?to=9999-12-31")
    assert page.status == 400 and 'id="f-to-error"' in page.text, page.text[:500]
    await staff.get(f"/staff/patients/{pid}/forms")
    page = await staff.post(
        f"/staff/patients/{pid}/forms", {"form_id": str(uuid.uuid4()), "due": "9999-12-31"}
    )
    assert page.status == 400 and "Enter a date from 1970 to 2199" in page.text


async def test_weekly_hours_and_override_errors_name_the_day_and_mark_its_field(
    staff: Browser,
) -> None:
    provider_id = await add_provider(staff, f"Dr. Hours {uuid.uuid4().hex[:6]}")
    base = f"/staff/practice/providers/{provider_id}"
    page = await staff.get(base)
    # The shared hint describes every day's field.
    assert page.text.count('aria-describedby="hours-hint"') == 7, page.text[:3000]
    hours = {f"hours_{d}": "09:00-17:00" for d in WEEK}
    for typed, message in (
        ("12:00-09:00", "Tuesday: End must be after start."),
        ("25:00-26:00", "Tuesday: Use a time such as 09:00."),
    ):
        page = await staff.post(base + "/hours", {**hours, "hours_tuesday": typed})
        assert page.status == 400, page.text[:500]
        assert ("#f-hours_tuesday", message) in summary_links(page.text), summary_links(page.text)
        field = re.search(r'<input[^>]*id="f-hours_tuesday"[^>]*>', page.text)
        assert field and 'aria-invalid="true"' in field[0], field
        assert "hours-hint" in field[0] and "f-hours_tuesday-error" in field[0]
        assert 'id="f-end"' not in page.text and 'href="#f-end"' not in page.text

    page = await staff.post(
        base + "/overrides", {"override_date": "2027-03-02", "override_hours": "12:00-09:00"}
    )
    assert page.status == 400
    links = summary_links(page.text)
    assert ("#f-override_hours", "Hours that day: End must be after start.") in links, links
    field = re.search(r'<input[^>]*id="f-override_hours"[^>]*>', page.text)
    assert field and 'aria-invalid="true"' in field[0]


async def test_appointment_type_numbers_name_their_field_and_read_as_hours(
    staff: Browser,
) -> None:
    await staff.get("/staff/practice/appointment-types/new")
    name = f"Long notice {uuid.uuid4().hex[:6]}"
    form = {"name": name, "duration_minutes": "30", "buffer_before_minutes": "ten"}
    page = await staff.post("/staff/practice/appointment-types/new", form)
    assert page.status == 400
    links = summary_links(page.text)
    assert ("#f-buffer_before_minutes", "Buffer before (minutes) must be a whole number.") in links

    form = {**form, "buffer_before_minutes": "", "cancellation_notice_minutes": "1440"}
    page = await staff.post(
        "/staff/practice/appointment-types/new", {**form, "minimum_notice_minutes": "2880"}
    )
    assert "Appointment type saved." in page.text, page.text[:2000]
    row = re.search(rf"{name}</a></th>.*?</tr>", page.text, re.S)
    assert row and "2 days; cancel 24 h" in row[0] and "30 min" in row[0], row


async def test_a_cancelled_appointment_cannot_be_opened_for_moving(
    stack: RunningStack, staff: Browser
) -> None:
    provider_id, type_id, _ = await set_up_clinic(staff)
    async with client() as http:
        _, record = await patient_browser(stack, http)
    await known_to_scheduling(stack, record["id"])
    one = await book_soonest(staff, record["id"], type_id)
    await staff.get(one)
    page = await staff.post(one + "/cancel", {"reason": ""})
    assert "Cancelled" in page.text

    page = await staff.get(one + f"/reschedule?provider={provider_id}")
    assert page.status == 200
    assert "is cancelled: it can no longer be changed" in page.text, page.text[:3000]
    assert not SLOT.findall(page.text) and "Find Available" not in page.text


def calendar_column(text: str, heading: str | None) -> str:
    """The inside of the calendar column headed `heading` (None: the first column)."""
    named = "[^<]+" if heading is None else re.escape(heading)
    found = re.search(
        rf'<h2 class="calendar-heading" id="col-\d+">{named}</h2>(.*?)</section>',
        text,
        re.S,
    )
    assert found, text[:3000]
    return found[1]


async def test_time_off_over_booked_appointments_lands_on_the_calendar_beside_them(
    stack: RunningStack, staff: Browser
) -> None:
    provider_id, type_id, type_name = await set_up_clinic(staff)
    async with client() as http:
        _, record = await patient_browser(stack, http)
    await known_to_scheduling(stack, record["id"])
    appointment = await book_soonest(staff, record["id"], type_id)
    page = await staff.get(appointment)
    starts = datetime.fromisoformat(re.findall(r'<time datetime="([^"]+)"', page.text)[0])

    def local(moment: datetime) -> str:
        return moment.astimezone(stack_zone()).strftime("%Y-%m-%dT%H:%M")

    base = f"/staff/practice/providers/{provider_id}"
    await staff.get(base)
    off_start, off_end = starts - timedelta(hours=1), starts + timedelta(hours=2)
    over = {"off_start": local(off_start), "off_end": local(off_end), "off_reason": "Course"}
    page = await staff.post(base + "/time-off", over)
    # The provider's calendar at the appointment: a day, or a week when the time off spans two.
    one_day = off_start.date() == (off_end - timedelta(minutes=1)).date()
    shown = starts.astimezone(stack_zone()).date()
    query = f"view={'day' if one_day else 'week'}&provider={provider_id}&date={shown}"
    assert page.url.endswith(f"/staff/practice/calendar?{query}"), page.url
    assert "Appointments already booked in it stay booked" in page.text, page.text[:2000]
    column = calendar_column(page.text, None if one_day else short_day(shown))  # day: one column
    assert "<strong>Time off</strong>" in column and "Course" in column, column
    assert f'href="{appointment}"' in column and type_name in column
    assert f"{record['last_name']}, {record['first_name']}" in column  # the audited batch names
    assert "During time off" in column

    later = starts + timedelta(days=3)
    clear = {"off_start": local(later), "off_end": local(later + timedelta(hours=1))}
    page = await staff.post(base + "/time-off", clear)
    assert page.url.endswith(base), page.url
    assert "Time off added." in page.text and "stay booked" not in page.text


async def test_booking_for_a_patient_leaves_out_the_times_they_are_booked_elsewhere(
    stack: RunningStack, staff: Browser
) -> None:
    """Two providers, each with a type of their own: once the patient holds a time with the
    first, the chart's booking page offers every time of the second but that one."""
    _, first_type, _ = await set_up_clinic(staff)
    second_provider, second_type, _ = await set_up_clinic(staff)
    async with client() as http:
        _, record = await patient_browser(stack, http)
    await known_to_scheduling(stack, record["id"])
    book = f"/staff/patients/{record['id']}/appointments/book"
    # From tomorrow: no time of the search passes while the test runs.
    tomorrow = days_ahead(1)
    found = await staff.get(f"{book}?type={first_type}&from={tomorrow}")
    held = html.unescape(SLOT.findall(found.text)[0])
    taken = int(held.split("|")[1])
    page = await staff.post(
        f"/staff/patients/{record['id']}/appointments",
        {"type": first_type, "slot": held, "idempotency_key": str(uuid.uuid4())},
    )
    assert "Appointment booked." in page.text, page.text[:2000]

    page = await staff.get(f"{book}?type={second_type}&provider={second_provider}&from={tomorrow}")
    starts = {int(html.unescape(s).split("|")[1]) for s in SLOT.findall(page.text)}
    assert taken not in starts and taken + 30 * 60 in starts, sorted(starts)[:5]


async def test_the_calendar_shows_time_off_closed_days_and_days_without_hours(
    stack: RunningStack, staff: Browser
) -> None:
    name = f"Dr. Away {uuid.uuid4().hex[:6]}"
    provider_id = await add_provider(staff, name)
    idle_name = f"Dr. Idle {uuid.uuid4().hex[:6]}"
    await test_scheduling_pages.add_provider(staff, idle_name)  # no weekly hours
    today = days_ahead(0)
    wednesday = today + timedelta(days=30 + 2 - today.weekday())
    monday = wednesday - timedelta(days=2)
    base = f"/staff/practice/providers/{provider_id}"
    await staff.get(base)
    closed = {"override_date": (wednesday + timedelta(days=1)).isoformat(), "override_hours": ""}
    assert "Hours for that date saved." in (await staff.post(base + "/overrides", closed)).text
    away = {
        "off_start": f"{monday}T15:00",
        "off_end": f"{wednesday}T10:30",
        "off_reason": "Conference",
    }
    page = await staff.post(base + "/time-off", away)
    assert page.url.endswith(base) and "Time off added." in page.text

    page = await staff.get(
        f"/staff/practice/calendar?view=week&provider={provider_id}&date={monday}"
    )
    times = {
        short_day(monday): "From 15:00",
        short_day(monday + timedelta(days=1)): "All day",
        short_day(wednesday): "Until 10:30",
    }
    for heading, text in times.items():
        column = calendar_column(page.text, heading)
        assert "<strong>Time off</strong>" in column and text in column, (heading, column)
        assert "Conference" in column
    thursday = calendar_column(page.text, short_day(wednesday + timedelta(days=1)))
    assert "Time off" not in thursday and '<p class="calendar-note">Closed</p>' in thursday
    assert "calendar-note" not in calendar_column(page.text, short_day(wednesday + timedelta(2)))

    # Every provider side by side for a day: theirs, and a provider with no hours says so.
    page = await staff.get(f"/staff/practice/calendar?view=day&date={wednesday}")
    column = calendar_column(page.text, name)
    assert "<strong>Time off</strong>" in column and "Until 10:30" in column, column
    idle = calendar_column(page.text, idle_name)
    assert '<p class="calendar-note">No hours</p>' in idle and "Time off" not in idle


async def test_booking_keeps_to_the_type_the_provider_and_the_calendar_day(
    stack: RunningStack, staff: Browser
) -> None:
    first, type_id, _ = await set_up_clinic(staff)  # the type is offered by `first` alone
    other = await add_provider(staff, f"Dr. Other {uuid.uuid4().hex[:6]}")
    async with client() as http:
        _, record = await patient_browser(stack, http)
        _, second = await patient_browser(stack, http)
    pid = record["id"]
    await known_to_scheduling(stack, pid)
    await known_to_scheduling(stack, second["id"])

    # Once the type is chosen, the provider drop-down lists only those offering it.
    page = await staff.get(f"/staff/patients/{pid}/appointments/book")
    assert f'value="{other}"' in page.text
    page = await staff.get(f"/staff/patients/{pid}/appointments/book?type={type_id}")
    assert f'value="{first}"' in page.text and f'value="{other}"' not in page.text

    # The calendar's Book appointment carries the day shown, as the earliest date.
    page = await staff.get(f"/staff/practice/calendar?provider={first}&date=2199-03-02")
    assert "/staff/practice/calendar/book?provider=" in page.text
    assert f"provider={first}&amp;from=2199-03-02" in page.text, page.text[:3000]
    page = await staff.get(f"/staff/practice/calendar/book?provider={first}&from=2199-03-02")
    assert "from=2199-03-02" in page.text  # carried on to the chosen patient's booking

    # A type both offer: a time taken meanwhile offers the chosen provider's times only (the
    # service's alternatives are the soonest of any provider: the other's same time first).
    both = await two_provider_type(staff, [first, other])
    query = f"type={both}&provider={first}"
    page = await staff.get(f"/staff/patients/{pid}/appointments/book?{query}")
    slot = html.unescape(SLOT.findall(page.text)[0])
    booked = await staff.post(
        f"/staff/patients/{second['id']}/appointments",
        {"type": both, "provider": first, "slot": slot, "idempotency_key": str(uuid.uuid4())},
    )
    assert "Appointment booked." in booked.text, booked.text[:2000]
    await staff.get(f"/staff/patients/{pid}/appointments/book?{query}")
    taken = await staff.post(
        f"/staff/patients/{pid}/appointments",
        {"type": both, "provider": first, "slot": slot, "idempotency_key": str(uuid.uuid4())},
    )
    assert taken.status == 409 and "just taken" in taken.text, taken.text[:2000]
    offered = [html.unescape(s) for s in SLOT.findall(taken.text)]
    assert offered and all(s.startswith(f"{first}|") for s in offered), offered
