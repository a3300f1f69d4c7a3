"""Staff lifecycle through the real gateway and identity: the JSON API's staff-user routes."""

from __future__ import annotations

import uuid

from tests.system.test_api import Api
from tests.system.test_api import api as api
from tests.system.test_api import http as http

CHOSEN = "Quartz-Lantern-Evening-77"


async def test_admin_creates_resets_disables_and_unlocks_staff(api: Api) -> None:
    admin = await api.staff_token()
    username = "nurse" + uuid.uuid4().hex[:8]
    status, created, _ = await api.call(
        "POST",
        "/api/v1/staff-users",
        admin,
        json={"username": username, "display_name": "Nurse Ratched", "role": "clinician"},
    )
    assert status == 201, created
    assert created["must_change_password"] and created["temporary_password"]
    user = created["id"]

    # First sign-in: must change the password; nothing else is allowed until then.
    status, session, _ = await api.call(
        "POST",
        "/api/v1/staff/sessions",
        json={"username": username, "password": created["temporary_password"]},
    )
    assert status == 201 and session["must_change_password"] is True, session
    pending = session["token"]
    status, _, _ = await api.call("GET", "/api/v1/patients?query=x", pending)
    assert status == 403
    status, _, _ = await api.call(
        "POST",
        "/api/v1/staff/password",
        pending,
        json={"current_password": created["temporary_password"], "new_password": CHOSEN},
    )
    assert status == 204
    status, session, _ = await api.call(
        "POST", "/api/v1/staff/sessions", json={"username": username, "password": CHOSEN}
    )
    assert status == 201 and session["must_change_password"] is False
    token = session["token"]
    status, _, _ = await api.call("GET", "/api/v1/patients?query=x", token)
    assert status == 200

    # Only admins manage staff users.
    status, _, _ = await api.call("GET", "/api/v1/staff-users", token)
    assert status == 403

    # Disabling ends the session at once; enabling lets the user sign in again.
    status, body, _ = await api.call(
        "PATCH", f"/api/v1/staff-users/{user}", admin, json={"disabled": True}
    )
    assert status == 200 and body["disabled"] is True
    status, _, _ = await api.call("GET", "/api/v1/patients?query=x", token)
    assert status == 401
    status, body, _ = await api.call(
        "PATCH",
        f"/api/v1/staff-users/{user}",
        admin,
        json={"disabled": False, "role": "front_desk"},
    )
    assert status == 200 and body["role"] == "front_desk" and not body["disabled"]

    # Reset: a temporary password, shown once; then unlock after the user is locked out.
    status, reset, _ = await api.call("POST", f"/api/v1/staff-users/{user}/password-reset", admin)
    assert status == 200 and reset["temporary_password"] and reset["expires_at"]
    for _ in range(5):
        status, _, _ = await api.call(
            "POST", "/api/v1/staff/sessions", json={"username": username, "password": "wrong-one-x"}
        )
        assert status == 401
    status, listed, _ = await api.call("GET", "/api/v1/staff-users", admin)
    assert status == 200
    mine = next(u for u in listed["items"] if u["id"] == user)
    assert mine["locked_until"] is not None and mine["must_change_password"]
    status, _, _ = await api.call("POST", f"/api/v1/staff-users/{user}/unlock", admin)
    assert status == 204
    status, session, _ = await api.call(
        "POST",
        "/api/v1/staff/sessions",
        json={"username": username, "password": reset["temporary_password"]},
    )
    assert status == 201 and session["must_change_password"] is True


async def test_unknown_or_malformed_staff_user_ids_are_not_found(api: Api) -> None:
    admin = await api.staff_token()
    for user in (str(uuid.uuid4()), "not-a-uuid"):
        status, _, _ = await api.call("POST", f"/api/v1/staff-users/{user}/unlock", admin)
        assert status == 404
        status, _, _ = await api.call(
            "PATCH", f"/api/v1/staff-users/{user}", admin, json={"disabled": True}
        )
        assert status == 404
