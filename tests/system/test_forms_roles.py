"""The forms set-up by role: admins and clinicians edit the form library, Patient Portal Forms
and visit forms; front desk reads them (pages without the controls, a short note saying who
may, a 403 page to a forged post) and the API answers it 403 ROLE_NOT_ALLOWED naming the roles.
The Admin tab's 403 page reads the same way."""

from __future__ import annotations

import uuid

import pytest

from tests.system.conftest import RunningStack
from tests.system.test_api import Api, api, http
from tests.system.test_patient_portal import client
from tests.system.test_practice_setup import member, signed_in

pytestmark = pytest.mark.system
__all__ = ["api", "http"]  # fixtures

REFUSAL = "Only admin and clinician staff can do this."
ITEMS = [{"link_id": "q", "text": "Anything else?", "type": "text"}]


def definition(title: str) -> dict[str, object]:
    return {"title": title, "kind": "visit", "items": ITEMS}


async def appointment_type(api: Api, admin: str) -> str:
    name = f"Role visit {uuid.uuid4().hex[:8]}"
    body = {"name": name, "duration_minutes": 20, "bookable_online": False, "provider_ids": []}
    status, added, _ = await api.call("POST", "/api/v1/appointment-types", admin, json=body)
    assert status == 201, added
    return str(added["id"])


async def test_api_forms_set_up_by_role(api: Api) -> None:
    admin = await api.staff_token()
    _, desk = await member(api, admin, "front_desk")
    _, clinician = await member(api, admin, "clinician")
    status, form, _ = await api.call(
        "POST", "/api/v1/forms", clinician, json=definition(f"Role form {uuid.uuid4().hex[:8]}")
    )
    assert status == 201, form
    type_id = await appointment_type(api, admin)
    sent: tuple[tuple[str, str, object], ...] = (
        ("POST", "/api/v1/forms", definition("Not mine to add")),
        ("PUT", f"/api/v1/forms/{form['id']}", definition("Not mine to change")),
        ("PUT", "/api/v1/portal-forms", {"form_ids": []}),
        ("PUT", f"/api/v1/appointment-types/{type_id}/visit-forms", {"form_ids": []}),
    )
    for method, path, body in sent:
        status, problem, headers = await api.call(method, path, desk, json=body)
        assert status == 403 and problem["code"] == "ROLE_NOT_ALLOWED", (path, problem)
        assert problem["title"] == "Not allowed" and problem["detail"] == REFUSAL
        assert headers["Content-Type"].startswith("application/problem+json")
    status, listed, _ = await api.call("GET", "/api/v1/forms", desk)  # front desk reads
    assert status == 200 and form["id"] in {f["id"] for f in listed["items"]}
    for path in ("/api/v1/staff-users", "/api/v1/audit/verification"):
        status, problem, _ = await api.call("GET", path, desk)
        assert status == 403 and problem["code"] == "ROLE_NOT_ALLOWED", (path, problem)
        assert problem["detail"] == "Only admin staff can do this."
    status, document, _ = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    create = document["paths"]["/api/v1/forms"]["post"]["description"]
    assert create.startswith("Staff roles: admin, clinician (others: 403 ROLE_NOT_ALLOWED).")


async def test_pages_offer_the_forms_set_up_only_to_the_roles_that_may(
    api: Api, stack: RunningStack
) -> None:
    admin = await api.staff_token()
    desk_name, _ = await member(api, admin, "front_desk")
    clinician_name, _ = await member(api, admin, "clinician")
    status, listed, _ = await api.call("GET", "/api/v1/forms", admin)
    assert status == 200 and listed["items"]
    form_id = listed["items"][0]["id"]
    type_id = await appointment_type(api, admin)

    async with client() as desk_session, client() as clinician_session:
        desk = await signed_in(stack, desk_session, desk_name)
        page = await desk.get("/staff/practice/portal-forms")
        assert page.status == 200 and 'type="checkbox"' not in page.text
        assert ">Update</button>" not in page.text and 'name="move"' not in page.text
        assert "Only admin and clinician staff change the portal's forms." in page.text
        page = await desk.get("/staff/practice/forms")
        assert page.status == 200 and "Create a form" not in page.text
        assert "/edit" not in page.text and "Import" not in page.text
        assert "Export" in page.text  # reading and exporting stay
        assert "Only admin and clinician staff create, edit or import forms." in page.text
        page = await desk.get(f"/staff/practice/forms/{form_id}")
        assert page.status == 200 and "/edit" not in page.text
        page = await desk.get("/staff/practice/visit-forms")
        assert page.status == 200 and 'type="checkbox"' not in page.text
        assert f'aria-labelledby="vf-{type_id}"' in page.text  # each type's forms, listed
        assert "Only admin and clinician staff change the visit forms." in page.text
        for path in ("/staff/practice/forms/new", f"/staff/practice/forms/{form_id}/edit"):
            page = await desk.get(path)
            assert page.status == 403 and "<h1>Not allowed</h1>" in page.text, path
            assert REFUSAL in page.text
        forged: tuple[tuple[str, dict[str, str]], ...] = (
            ("/staff/practice/portal-forms", {"order": form_id}),
            ("/staff/practice/portal-forms", {"order": form_id, "move": f"down:{form_id}"}),
            (f"/staff/practice/visit-forms/{type_id}", {"form_id": form_id}),
            ("/staff/practice/forms/new", {"title": "Nope", "rows": "0"}),
            (f"/staff/practice/forms/{form_id}/edit", {"title": "Nope", "rows": "0"}),
            ("/staff/practice/forms/import", {"kind": "visit"}),
        )
        for path, data in forged:
            page = await desk.post(path, data)
            assert page.status == 403 and REFUSAL in page.text, (path, page.text[:500])
        page = await desk.get("/staff/admin")
        assert page.status == 403 and "<h1>Not allowed</h1>" in page.text
        assert "Only admin staff can do this." in page.text

        clinician = await signed_in(stack, clinician_session, clinician_name)
        page = await clinician.get("/staff/practice/portal-forms")
        assert ">Update</button>" in page.text and "Only admin and clinician" not in page.text
        page = await clinician.get("/staff/practice/forms")
        assert "Create a form" in page.text and "Import" in page.text
        page = await clinician.get("/staff/practice/visit-forms")
        assert f'action="/staff/practice/visit-forms/{type_id}"' in page.text
        page = await clinician.get("/staff/practice/forms/new")
        assert page.status == 200
