"""The practice's set-up through the gateway, by role: admins change providers and appointment
types, front desk the hours and time off, clinicians read (API 403 problem+json, pages without
the forms and 403 to a forged post); a provider deactivated after a confirmation step, still in
the calendar's drop-down, and reactivated; the API's checks and messages."""

from __future__ import annotations

import uuid

import pytest

from tests.system.conftest import RunningStack
from tests.system.test_api import Api, api, http
from tests.system.test_patient_portal import client
from tests.system.test_scheduling_api import ALL_DAY
from tests.system.test_scheduling_pages import staff
from tests.system.test_staff_lifecycle import CHOSEN, new_staff_member
from tests.system.test_staff_pages import Browser

pytestmark = pytest.mark.system
__all__ = ["api", "http", "staff"]  # fixtures

PROVIDERS = "/api/v1/providers"
TYPES = "/api/v1/appointment-types"


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


async def member(api: Api, admin: str, role: str) -> tuple[str, str]:
    """A new staff member of `role`: their username and API token."""
    username = role.replace("_", "") + uuid.uuid4().hex[:8]
    _, token = await new_staff_member(api, admin, username, role)
    return username, token


async def test_api_set_up_by_role(api: Api) -> None:
    admin = await api.staff_token()
    _, desk = await member(api, admin, "front_desk")
    _, clinician = await member(api, admin, "clinician")
    status, provider, _ = await api.call(
        "POST", PROVIDERS, admin, json={"display_name": unique("Dr.")}
    )
    assert status == 201, provider
    one = f"{PROVIDERS}/{provider['id']}"
    new_type: dict[str, object] = {"name": unique("Visit"), "duration_minutes": 20}
    new_type.update(bookable_online=False, provider_ids=[])
    time_off = {"start": "2096-01-02T09:00:00Z", "end": "2096-01-02T10:00:00Z"}
    for token in (desk, clinician):
        sent: tuple[tuple[str, str, object], ...] = (
            ("POST", PROVIDERS, {"display_name": unique("Dr.")}),
            ("PATCH", one, {"active": False}),
            ("POST", TYPES, new_type),
        )
        for method, path, body in sent:
            status, problem, headers = await api.call(method, path, token, json=body)
            assert status == 403 and problem["code"] == "ROLE_NOT_ALLOWED", (path, problem)
            assert problem["detail"] == "Only admin staff can do this."
            assert headers["Content-Type"].startswith("application/problem+json")
    kept: tuple[tuple[str, str, object], ...] = (
        ("PUT", one + "/working-hours", {"weekly": ALL_DAY}),
        ("POST", one + "/time-off", time_off),
    )
    for method, path, body in kept:
        status, problem, _ = await api.call(method, path, clinician, json=body)
        assert status == 403, problem
        assert problem["detail"] == "Only admin and front desk staff can do this."
        status, done, _ = await api.call(method, path, desk, json=body)
        assert status in (200, 201), done
    for token in (desk, clinician):  # every role reads the set-up
        status, listed, _ = await api.call("GET", PROVIDERS, token)
        assert status == 200 and provider["id"] in [p["id"] for p in listed["items"]]
        status, _, _ = await api.call("GET", TYPES, token)
        assert status == 200


async def test_api_rename_deactivate_reactivate_and_unique_names(api: Api) -> None:
    admin = await api.staff_token()
    name = unique("Dr. Ines")
    status, provider, _ = await api.call("POST", PROVIDERS, admin, json={"display_name": name})
    assert status == 201, provider
    one = f"{PROVIDERS}/{provider['id']}"
    status, problem, _ = await api.call(
        "POST", PROVIDERS, admin, json={"display_name": name.upper()}
    )
    assert status == 409 and problem["code"] == "NAME_TAKEN", problem
    assert problem["detail"] == f"An active provider is already called {name.upper()}. " + (
        "Choose another name."
    )
    status, off, _ = await api.call("PATCH", one, admin, json={"active": False})
    assert status == 200 and off == {**provider, "active": False}, off
    status, on, _ = await api.call("PATCH", one, admin, json={"active": True})
    assert status == 200 and on == provider, on
    renamed = name + " MD"
    status, changed, _ = await api.call("PATCH", one, admin, json={"display_name": renamed})
    assert status == 200 and changed["display_name"] == renamed and changed["active"]
    status, problem, _ = await api.call("PATCH", one, admin, json={})
    assert status == 400 and problem["detail"] == "Send display_name, active or both.", problem
    missing = f"{PROVIDERS}/{uuid.uuid4()}"
    status, problem, _ = await api.call("PATCH", missing, admin, json={"active": True})
    assert status == 404 and problem["detail"] == "No such provider.", problem
    status, problem, _ = await api.call(
        "PUT", missing + "/working-hours", admin, json={"weekly": []}
    )
    assert status == 404 and problem["detail"] == "No such provider.", problem


async def test_api_checks_read_as_the_rest_of_the_api(api: Api) -> None:
    admin = await api.staff_token()
    status, problem, _ = await api.call(
        "GET", "/api/v1/appointments?from=2027-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", admin
    )
    assert status == 400 and problem["errors"] == {"to": ["Must be after from."]}, problem
    assert problem["detail"] == "Some fields are not valid."
    name = unique("Follow-up")
    body = {"name": name, "duration_minutes": 20, "bookable_online": False, "provider_ids": []}
    status, _, _ = await api.call("POST", TYPES, admin, json=body)
    assert status == 201
    status, problem, _ = await api.call("POST", TYPES, admin, json={**body, "name": name.lower()})
    assert status == 400, problem
    assert problem["errors"] == {"name": ["An appointment type with this name already exists."]}
    too_short = {**body, "name": unique("Quick"), "duration_minutes": 2, "horizon_days": 999}
    status, problem, _ = await api.call("POST", TYPES, admin, json=too_short)
    assert status == 400 and problem["errors"] == {
        "duration_minutes": ["Must be at least 5."],
        "horizon_days": ["Must be at most 365."],
    }, problem


async def signed_in(stack: RunningStack, session: object, username: str) -> Browser:
    b = Browser(session, stack.url)  # type: ignore[arg-type]
    page = await b.sign_in(username, CHOSEN)
    assert page.status == 200 and "/staff/login" not in page.url, page.text[:500]
    return b


async def test_pages_deactivate_after_confirming_keep_the_calendar_and_reactivate(
    staff: Browser,
) -> None:
    name = unique("Dr. Otto")
    await staff.get("/staff/practice/providers")
    page = await staff.post("/staff/practice/providers", {"display_name": name})
    assert "Provider added." in page.text, page.text[:1000]
    one = page.url.rsplit("?", 1)[0]
    provider_id = one.rsplit("/", 1)[-1]
    assert f'href="/staff/practice/providers/{provider_id}/deactivate"' in page.text
    # A namesake (any case) is refused beside the field.
    page = await staff.post("/staff/practice/providers", {"display_name": name.lower()})
    assert page.status == 400 and "is already called" in page.text
    # Deactivate asks first (a page of its own: no JavaScript needed).
    page = await staff.get(f"/staff/practice/providers/{provider_id}/deactivate")
    assert page.status == 200 and f"Deactivate {name}?" in page.text
    assert "existing appointments stay" in page.text
    page = await staff.post(f"/staff/practice/providers/{provider_id}/deactivate")
    assert "Provider deactivated" in page.text and "Reactivate provider" in page.text
    # The calendar's drop-down still offers them, marked.
    page = await staff.get("/staff/practice/calendar")
    assert f'<option value="{provider_id}">{name} (inactive)</option>' in page.text
    page = await staff.post(f"/staff/practice/providers/{provider_id}/reactivate")
    assert "Provider reactivated" in page.text and "Deactivate provider" in page.text
    page = await staff.get("/staff/practice/calendar")
    assert f'<option value="{provider_id}">{name}</option>' in page.text


async def test_pages_offer_each_role_only_what_it_may_change(
    api: Api, stack: RunningStack, staff: Browser
) -> None:
    admin = await api.staff_token()
    desk_name, _ = await member(api, admin, "front_desk")
    clinician_name, _ = await member(api, admin, "clinician")
    status, provider, _ = await api.call(
        "POST", PROVIDERS, admin, json={"display_name": unique("Dr. Role")}
    )
    assert status == 201
    one = f"/staff/practice/providers/{provider['id']}"
    # A type patients may book with no provider says so in the list.
    lonely = unique("Lonely visit")
    body = {"name": lonely, "duration_minutes": 20, "bookable_online": True, "provider_ids": []}
    status, _, _ = await api.call("POST", TYPES, admin, json=body)
    assert status == 201
    page = await staff.get("/staff/practice/appointment-types")
    assert "No active provider yet: patients cannot book it" in page.text
    assert "Nobody" not in page.text

    async with client() as desk_session, client() as clinician_session:
        desk = await signed_in(stack, desk_session, desk_name)
        page = await desk.get("/staff/practice/providers")
        assert "Add provider" not in page.text and "Only admin staff" in page.text
        page = await desk.get(one)
        assert "Save weekly hours" in page.text and "Add time off" in page.text
        assert "Rename" not in page.text and "Deactivate provider" not in page.text
        page = await desk.post(one + "/rename", {"display_name": "Dr. Nope"})
        assert page.status == 403 and "Only admin staff can do this." in page.text
        page = await desk.post(
            one + "/hours", {"hours_monday": "09:00-12:00"} | {f"hours_{d}": "" for d in DAYS}
        )
        assert "Weekly hours saved." in page.text, page.text[:1000]
        page = await desk.get("/staff/practice/appointment-types")
        assert "Add appointment type" not in page.text
        page = await desk.get("/staff/practice/appointment-types/new")
        assert page.status == 403

        clinician = await signed_in(stack, clinician_session, clinician_name)
        page = await clinician.get(one)
        assert page.status == 200 and "09:00-12:00" in page.text  # read, not changed
        assert "Save weekly hours" not in page.text and "Add time off" not in page.text
        page = await clinician.post(one + "/hours", {"hours_monday": "08:00-09:00"})
        assert page.status == 403
        assert "Only admin and front desk staff can do this." in page.text


DAYS = ("tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
