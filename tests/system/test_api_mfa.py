"""Two-factor sign-in through the JSON API of the running stack (answers checked against the
OpenAPI document)."""

from __future__ import annotations

import time
import uuid

import asyncpg

from services.identity import totp
from services.runtime.db import with_database
from tests.system.conftest import RunningStack
from tests.system.test_api import Api, api, http
from tests.system.test_staff_pages import Browser, admin, browser

__all__ = ["admin", "api", "browser", "http"]  # the fixtures, shared with other modules

NEW_PASSWORD = "a long and new passphrase 91"


def code(secret: str, shift: int = 0) -> str:
    return totp.code_at(secret, time.time() + shift * totp.STEP_SECONDS)


async def test_patient_totp_enrolment_two_step_sign_in_and_staff_reset(api: Api) -> None:
    staff = await api.staff_token()
    patient, issued = await api.portal_patient(staff)
    username = issued["username"]
    first = await api.patient_token("onsite", username, issued["password"])
    status, _, token = await api.change_password(first, issued["password"], NEW_PASSWORD)
    assert status == 204

    status, enrolment, _ = await api.call("POST", "/api/v1/portal/mfa/totp", token)
    assert status == 201 and enrolment["otpauth_uri"].startswith("otpauth://totp/")
    secret = enrolment["secret"]
    status, problem, _ = await api.call(
        "POST", "/api/v1/portal/mfa/totp/confirm", token, json={"code": "12"}
    )
    assert status == 403 and problem["code"] == "INVALID_CODE"
    status, confirmed, _ = await api.call(
        "POST", "/api/v1/portal/mfa/totp/confirm", token, json={"code": code(secret, -1)}
    )
    assert status == 200 and len(confirmed["recovery_codes"]) == 10
    status, problem, _ = await api.call("POST", "/api/v1/portal/mfa/totp", token)
    assert status == 409  # on already

    # The sign-in now answers a challenge instead of a token.
    status, answer = await api.sign_in("onsite", username, NEW_PASSWORD)
    assert status == 200 and answer["mfa_required"] is True and "token" not in answer
    step = "/api/v1/portal/onsite/sessions/mfa"
    status, _, _ = await api.call(
        "POST", "/api/v1/staff/sessions/mfa", json={"challenge": answer["challenge"], "code": "1"}
    )
    assert status == 401  # a patient's challenge is not a staff one
    now = code(secret)
    status, session, _ = await api.call(
        "POST", step, json={"challenge": answer["challenge"], "code": now}
    )
    assert status == 201 and session["token"] and session["realm"] == "onsite"

    # The same code a second time is refused.
    status, answer = await api.sign_in("onsite", username, NEW_PASSWORD)
    status, problem, _ = await api.call(
        "POST", step, json={"challenge": answer["challenge"], "code": now}
    )
    assert status == 401 and problem["code"] == "INVALID_CODE"
    # A recovery code works, once.
    recovery = confirmed["recovery_codes"][0]
    status, _, _ = await api.call(
        "POST", step, json={"challenge": answer["challenge"], "code": recovery}
    )
    assert status == 201

    # Staff reset the factor: the password alone signs in again.
    status, _, _ = await api.call(
        "DELETE", f"/api/v1/patients/{patient['id']}/portal-credentials/onsite/mfa", staff
    )
    assert status == 204
    status, answer = await api.sign_in("onsite", username, NEW_PASSWORD)
    assert status == 201 and answer["token"]


async def test_staff_reset_a_patients_second_factor_from_the_chart(
    api: Api, stack: RunningStack, admin: Browser
) -> None:
    staff = await api.staff_token()
    patient, issued = await api.portal_patient(staff)
    token = await api.patient_token("onsite", issued["username"], issued["password"])
    status, _, token = await api.change_password(token, issued["password"], NEW_PASSWORD)
    assert status == 204
    status, enrolment, _ = await api.call("POST", "/api/v1/portal/mfa/totp", token)
    assert status == 201
    status, _, _ = await api.call(
        "POST", "/api/v1/portal/mfa/totp/confirm", token, json={"code": code(enrolment["secret"])}
    )
    assert status == 200
    status, record, _ = await api.call("GET", f"/api/v1/patients/{patient['id']}", staff)
    assert status == 200 and record["portal"]["onsite"]["mfa_enrolled"] is True

    chart = f"/staff/patients/{patient['id']}"
    page = await admin.get(chart)
    assert 'id="mfa-reset-onsite"' in page.text and "Two-factor sign-in on" in page.text
    assert "Reset Onsite Two-Factor Sign-in" in page.text  # the Patient Info menu too
    page = await admin.get(f"{chart}/portal/onsite/mfa-reset")
    assert page.status == 200 and "Remove two-factor sign-in" in page.text
    assert issued["username"] in page.text
    page = await admin.get(f"{chart}/portal/offsite/mfa-reset")
    assert page.status == 404  # no offsite account
    page = await admin.post(f"{chart}/portal/onsite/mfa-reset")
    assert page.status == 200 and page.url.endswith(chart), page.url
    assert "Two-factor sign-in removed" in page.text
    assert 'id="mfa-reset-onsite"' not in page.text

    # The password alone signs in again, and the audit log names who removed it.
    status, answer = await api.sign_in("onsite", issued["username"], NEW_PASSWORD)
    assert status == 201 and answer["token"]
    conn = await asyncpg.connect(
        with_database(stack.stack.config.database_url or "", stack.stack.database("identity"))
    )
    try:
        logged = await conn.fetchrow(
            """SELECT actor_name, outcome, detail FROM audit_log
               WHERE action = 'mfa.reset' AND patient_id = $1 ORDER BY id DESC LIMIT 1""",
            uuid.UUID(patient["id"]),
        )
    finally:
        await conn.close()
    assert logged is not None and dict(logged) == {
        "actor_name": "Administrator",  # the display name of `admin`
        "outcome": "ok",
        "detail": "realm=onsite",
    }
