"""Two-factor sign-in through the JSON API of the running stack (answers checked against the
OpenAPI document)."""

from __future__ import annotations

import time

from services.identity import totp
from tests.system.test_api import Api, api, http

__all__ = ["api", "http"]  # the fixtures, shared with test_api

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
