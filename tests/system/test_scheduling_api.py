"""The scheduling JSON API on the real stack, every JSON answer checked against the document:
staff set up a provider, hours and a type; a patient finds a time and books it with an
Idempotency-Key (a retry is the same appointment); a second patient asking for it gets 409 with
alternatives; patients list, reschedule (same id) and cancel their own, never another's; the
calendar file parses; staff book, list, mark and cancel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest

from tests.system.conftest import (
    RunningStack,
    known_to_scheduling,
    not_yet_known,
)
from tests.system.test_api import NEW_PASSWORD, Api, api, http, unique_letters

pytestmark = pytest.mark.system
__all__ = ["api", "http"]  # fixtures

ALL_DAY = [
    {"weekday": day, "start": "00:00", "end": "24:00"}
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
]


async def portal_token(api: Api, staff: str) -> tuple[dict[str, Any], str]:
    """A portal patient, signed in with the password changed."""
    patient, issued = await api.portal_patient(staff)
    token = await api.patient_token("onsite", issued["username"], issued["password"])
    status, _, token = await api.change_password(token, issued["password"], NEW_PASSWORD)
    assert status == 204
    return patient, token


async def set_up(api: Api, staff: str) -> tuple[dict[str, Any], dict[str, Any]]:
    status, provider, _ = await api.call(
        "POST", "/api/v1/providers", staff, json={"display_name": "Dr " + unique_letters()}
    )
    assert status == 201 and provider["active"] is True, provider
    status, hours, _ = await api.call(
        "PUT", f"/api/v1/providers/{provider['id']}/working-hours", staff, json={"weekly": ALL_DAY}
    )
    assert status == 200 and len(hours["weekly"]) == 7, hours
    status, kind, _ = await api.call(
        "POST",
        "/api/v1/appointment-types",
        staff,
        json={
            "name": "Visit " + unique_letters(),
            "duration_minutes": 30,
            "minimum_notice_minutes": 0,
            "cancellation_notice_minutes": 0,
            "horizon_days": 7,
            "bookable_online": True,
            "provider_ids": [provider["id"]],
        },
    )
    assert status == 201, kind
    assert kind["slot_interval_minutes"] == 30 and kind["buffer_before_minutes"] == 0
    return provider, kind


async def test_staff_set_up_and_patients_book_move_and_cancel_their_own(
    api: Api, stack: RunningStack
) -> None:
    staff = await api.staff_token()
    provider, kind = await set_up(api, staff)
    status, listed, _ = await api.call("GET", "/api/v1/providers", staff)
    assert provider in listed["items"]
    status, listed, _ = await api.call("GET", "/api/v1/appointment-types", staff)
    assert kind["id"] in [t["id"] for t in listed["items"]]

    ada, ada_token = await portal_token(api, staff)
    grace, grace_token = await portal_token(api, staff)
    status, types, _ = await api.call("GET", "/api/v1/portal/appointment-types", ada_token)
    assert status == 200 and kind["id"] in [t["id"] for t in types["items"]]

    # Find Available, soonest first, paged with `next`.
    query = f"appointment_type_id={kind['id']}&provider_id={provider['id']}&limit=3"
    status, found, _ = await api.call("GET", f"/api/v1/portal/availability?{query}", ada_token)
    assert status == 200 and len(found["slots"]) == 3 and found["next"], found
    starts = [s["start"] for s in found["slots"]]
    assert starts == sorted(starts) and found["time_zone"] == "America/New_York"
    assert found["slots"][0]["provider_name"] == provider["display_name"]
    status, more, _ = await api.call(
        "GET", f"/api/v1/portal/availability?{query}&cursor={found['next']}", ada_token
    )
    assert status == 200 and more["slots"][0]["start"] > starts[-1]

    # Book with an Idempotency-Key; the retry answers the same appointment.
    slot = found["slots"][0]
    body = {
        "appointment_type_id": kind["id"],
        "provider_id": provider["id"],
        "start": slot["start"],
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    status, booked, _ = await api.call(
        "POST", "/api/v1/portal/appointments", ada_token, json=body, headers=key
    )
    assert status == 201 and booked["status"] == "booked", booked
    assert booked["patient_id"] == ada["id"] and booked["start"] == slot["start"]
    assert booked["end"] == slot["end"]
    status, again, _ = await api.call(
        "POST", "/api/v1/portal/appointments", ada_token, json=body, headers=key
    )
    assert status == 201 and again["id"] == booked["id"]
    other = {**body, "start": found["slots"][1]["start"]}
    status, problem, _ = await api.call(
        "POST", "/api/v1/portal/appointments", ada_token, json=other, headers=key
    )
    assert status == 409 and problem["code"] == "IDEMPOTENCY_KEY_REUSED", problem

    # The second patient asks for the same time: 409 with fresh alternatives.
    status, problem, _ = await api.call(
        "POST", "/api/v1/portal/appointments", grace_token, json=body
    )
    assert status == 409 and problem["code"] == "SLOT_TAKEN", problem
    alternatives = problem["alternatives"]
    assert alternatives and slot["start"] not in [a["start"] for a in alternatives]

    # Own appointments only; another's id is 404 for every operation.
    status, mine, _ = await api.call("GET", "/api/v1/portal/appointments", ada_token)
    assert [a["id"] for a in mine["items"]] == [booked["id"]]
    status, theirs, _ = await api.call("GET", "/api/v1/portal/appointments", grace_token)
    assert theirs["items"] == []
    one = f"/api/v1/portal/appointments/{booked['id']}"
    for method, path, sent in (
        ("POST", one + "/cancel", {}),
        ("POST", one + "/reschedule", {"provider_id": provider["id"], "start": slot["start"]}),
        ("GET", one + "/calendar.ics", None),
    ):
        status, problem, _ = await api.call(method, path, grace_token, json=sent)
        assert status == 404, (path, problem)

    # Reschedule to an alternative: the same id, the old time free again.
    target = alternatives[0]
    status, moved, _ = await api.call(
        "POST",
        one + "/reschedule",
        ada_token,
        json={"provider_id": target["provider_id"], "start": target["start"]},
    )
    assert status == 200 and moved["id"] == booked["id"] and moved["start"] == target["start"]
    status, taken, _ = await api.call("POST", "/api/v1/portal/appointments", grace_token, json=body)
    assert status == 201 and taken["patient_id"] == grace["id"], taken

    # Add to calendar: text/calendar, one event with the new time.
    async with api.http.get(
        stack.url + one + "/calendar.ics", headers={"Authorization": f"Bearer {ada_token}"}
    ) as reply:
        assert reply.status == 200
        assert reply.content_type == "text/calendar"
        data = await reply.read()
    (await api.contract()).check("GET", one + "/calendar.ics", 200, data.decode())
    (event,) = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert str(event["uid"]).startswith(f"appointment-{booked['id']}@")
    assert event.decoded("dtstart").isoformat() == _utc(target["start"])

    # Cancel (reason optional): the time is offered again.
    status, cancelled, _ = await api.call("POST", one + "/cancel", ada_token)
    assert status == 200 and cancelled["status"] == "cancelled"
    status, found, _ = await api.call(
        "GET",
        f"/api/v1/portal/availability?appointment_type_id={kind['id']}&limit=200",
        ada_token,
    )
    assert target["start"] in [s["start"] for s in found["slots"]]


async def test_staff_book_list_mark_and_cancel(api: Api) -> None:
    staff = await api.staff_token()
    provider, kind = await set_up(api, staff)
    patient = await api.new_patient(staff)
    await known_to_scheduling(api.stack, patient["id"])
    status, found, _ = await api.call(
        "GET", f"/api/v1/availability?appointment_type_id={kind['id']}&limit=2", staff
    )
    assert status == 200 and len(found["slots"]) == 2, found
    start = found["slots"][1]["start"]
    body = {
        "patient_id": patient["id"],
        "appointment_type_id": kind["id"],
        "provider_id": provider["id"],
        "start": start,
    }
    key = {"Idempotency-Key": str(uuid.uuid4())}
    status, booked, _ = await api.call(
        "POST", "/api/v1/appointments", staff, json=body, headers=key
    )
    assert status == 201 and booked["status"] == "booked" and booked["patient_id"] == patient["id"]
    # A retry with the key (a lost answer) is the same appointment; the key is for this body.
    status, again, _ = await api.call("POST", "/api/v1/appointments", staff, json=body, headers=key)
    assert status == 201 and again["id"] == booked["id"]
    other = {**body, "start": found["slots"][0]["start"]}
    status, problem, _ = await api.call(
        "POST", "/api/v1/appointments", staff, json=other, headers=key
    )
    assert status == 409 and problem["code"] == "IDEMPOTENCY_KEY_REUSED", problem

    # Times need an offset; staff booking needs the patient.
    naive = {**body, "start": start[:19]}
    status, problem, _ = await api.call("POST", "/api/v1/appointments", staff, json=naive)
    assert status == 400 and "start" in problem["errors"], problem
    status, problem, _ = await api.call(
        "POST",
        "/api/v1/appointments",
        staff,
        json={k: v for k, v in body.items() if k != "patient_id"},
    )
    assert status == 400 and "patient_id" in problem["errors"]
    status, problem, _ = await api.call("GET", f"/api/v1/appointments?from={start[:19]}", staff)
    assert status == 400 and "from" in problem["errors"]

    status, listed, _ = await api.call(
        "GET",
        f"/api/v1/appointments?patient_id={patient['id']}&provider_id={provider['id']}",
        staff,
    )
    assert [a["id"] for a in listed["items"]] == [booked["id"]]
    # A provider with no appointments lists none; an id that names no provider is a 404.
    status, idle, _ = await api.call(
        "POST", "/api/v1/providers", staff, json={"display_name": "Dr. Idle"}
    )
    assert status == 201
    status, listed, _ = await api.call(
        "GET", f"/api/v1/appointments?provider_id={idle['id']}", staff
    )
    assert (status, listed["items"]) == (200, [])
    status, problem, _ = await api.call(
        "GET", f"/api/v1/appointments?provider_id={uuid.uuid4()}", staff
    )
    assert status == 404 and problem["status"] == 404, problem
    # Find Available likewise: a provider who does not offer the type has no times; no such
    # provider is a 404.
    find = f"/api/v1/availability?appointment_type_id={kind['id']}&provider_id="
    status, none, _ = await api.call("GET", find + idle["id"], staff)
    assert (status, none["slots"]) == (200, [])
    status, problem, _ = await api.call("GET", find + str(uuid.uuid4()), staff)
    assert status == 404 and problem["status"] == 404, problem
    # A visit status waits for the appointment: no-show only once it was due.
    one = f"/api/v1/appointments/{booked['id']}"
    status, problem, _ = await api.call("POST", one + "/status", staff, json={"status": "noshow"})
    assert status == 409 and problem["code"] == "STATUS_TOO_EARLY", problem
    # Staff record yesterday's visit (any time inside the hours) and mark it.
    yesterday = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    past = {**body, "start": (yesterday - timedelta(days=1)).isoformat()}
    status, visit, _ = await api.call("POST", "/api/v1/appointments", staff, json=past)
    assert status == 201, visit
    one = f"/api/v1/appointments/{visit['id']}"
    status, marked, _ = await api.call("POST", one + "/status", staff, json={"status": "arrived"})
    assert status == 200 and marked["status"] == "arrived"
    status, problem, _ = await api.call("POST", one + "/status", staff, json={"status": "noshow"})
    assert status == 409 and problem["code"] == "STATUS_TRANSITION"
    status, problem, _ = await api.call("POST", one + "/cancel", staff)
    assert status == 409 and problem["code"] == "NOT_CANCELLABLE"  # arrived
    first = {**body, "start": found["slots"][0]["start"]}
    status, booked, _ = await api.call("POST", "/api/v1/appointments", staff, json=first)
    assert status == 201
    one = f"/api/v1/appointments/{booked['id']}"
    status, cancelled, _ = await api.call("POST", one + "/cancel", staff, json={"reason": "Ill"})
    assert status == 200 and cancelled["status"] == "cancelled"
    assert cancelled["cancellation_reason"] == "Ill"

    # Time off: no times are offered during it.
    status, off, _ = await api.call(
        "POST",
        f"/api/v1/providers/{provider['id']}/time-off",
        staff,
        json={"start": found["slots"][0]["start"], "end": "2199-01-01T00:00:00Z"},
    )
    assert status == 201 and off["provider_id"] == provider["id"], off
    status, found, _ = await api.call(
        "GET", f"/api/v1/availability?appointment_type_id={kind['id']}", staff
    )
    assert found["slots"] == [] and found["next"] is None
    span = {"start": off["start"], "end": off["end"]}
    status, _, _ = await api.call(
        "POST", f"/api/v1/providers/{uuid.uuid4()}/time-off", staff, json=span
    )
    assert status == 404


async def test_staff_book_only_for_patients_identity_registered(api: Api) -> None:
    """A made-up patient id is 404 (nothing booked); a patient registered through the API is
    booked once scheduling has heard of them, and a 503 to retry says when it has not yet."""
    staff = await api.staff_token()
    provider, kind = await set_up(api, staff)
    status, found, _ = await api.call(
        "GET", f"/api/v1/availability?appointment_type_id={kind['id']}&limit=2", staff
    )
    assert status == 200 and len(found["slots"]) == 2, found
    slot = found["slots"][0]
    body = {
        "appointment_type_id": kind["id"],
        "provider_id": provider["id"],
        "start": slot["start"],
    }
    made_up = str(uuid.uuid4())
    key = {"Idempotency-Key": str(uuid.uuid4())}
    status, problem, headers = await api.call(
        "POST", "/api/v1/appointments", staff, json={**body, "patient_id": made_up}, headers=key
    )
    assert status == 404 and problem["detail"] == "No such patient.", problem
    assert headers["Content-Type"].startswith("application/problem+json")
    status, listed, _ = await api.call(
        "GET", f"/api/v1/appointments?provider_id={provider['id']}", staff
    )
    assert status == 200 and listed["items"] == []

    patient = await api.new_patient(staff)
    await known_to_scheduling(api.stack, patient["id"])
    status, booked, _ = await api.call(
        "POST", "/api/v1/appointments", staff, json={**body, "patient_id": patient["id"]}
    )
    assert status == 201 and booked["patient_id"] == patient["id"], booked

    # Registered, but scheduling has not handled the event yet (its row taken away here).
    late = await api.new_patient(staff)
    await known_to_scheduling(api.stack, late["id"])
    second = {**body, "start": found["slots"][1]["start"], "patient_id": late["id"]}
    async with not_yet_known(api.stack, late["id"]):
        status, problem, headers = await api.call(
            "POST", "/api/v1/appointments", staff, json=second
        )
        assert status == 503 and problem["code"] == "PATIENT_NOT_READY", problem
        assert headers["Retry-After"] == "2"
    status, booked, _ = await api.call("POST", "/api/v1/appointments", staff, json=second)
    assert status == 201 and booked["patient_id"] == late["id"], booked


def _utc(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()
