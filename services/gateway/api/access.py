"""Who calls the API: a staff or a patient session, from the Bearer token only.

The API never accepts the browser's session cookies (they are ambient credentials, and API
calls carry no CSRF token): a call without `Authorization: Bearer <token>` is not signed in.
"""

from __future__ import annotations

from aiohttp import web

from services.gateway import auth
from services.gateway.api.json_io import unauthorized
from services.gateway.security import Problem


async def staff(
    request: web.Request, *, password_change: bool = False, mfa_enrolment: bool = False
) -> auth.Caller:
    """The staff member whose Bearer token this is; 401 otherwise (a patient's token too).

    A member whose password must change first gets 403 unless `password_change`; one whose role
    requires two-factor sign-in they have not set up gets 403 unless `mfa_enrolment`. (Every
    service refuses their principal anyway; this answer says what to do.)
    """
    found = await auth.staff_caller(request) if auth.bearer_token(request) else None
    if found is None:
        raise unauthorized("Send a valid staff session token: Authorization: Bearer <token>.")
    if found.must_change_password and not password_change:
        raise Problem(
            403,
            "Password change required",
            "Change the password first: POST /api/v1/staff/password.",
            code="PASSWORD_CHANGE_REQUIRED",
        )
    if found.must_enrol_mfa and not mfa_enrolment:
        raise Problem(
            403,
            "Two-factor sign-in required",
            "Your role requires two-factor sign-in: set it up first with "
            "POST /api/v1/staff/mfa/totp, then POST /api/v1/staff/mfa/totp/confirm.",
            code="MFA_ENROLMENT_REQUIRED",
        )
    return found


async def patient(
    request: web.Request, *, allow_pending: bool = False, with_own_profile: bool = False
) -> auth.Caller:
    """The patient whose Bearer token this is (either realm); 401 otherwise.

    Unless `allow_pending`, a patient whose password must change first gets 403.
    with_own_profile: see auth.patient_caller.
    """
    found = (
        await auth.patient_caller(request, None, with_own_profile=with_own_profile)
        if auth.bearer_token(request)
        else None
    )
    if found is None:
        raise unauthorized("Send a valid patient session token: Authorization: Bearer <token>.")
    if found.must_change_password and not allow_pending:
        raise Problem(
            403,
            "Password change required",
            "Change the password first: POST /api/v1/portal/password.",
            code="PASSWORD_CHANGE_REQUIRED",
        )
    return found


REFUSED = auth.SIGN_IN_REFUSED


async def sign_in_allowed(request: web.Request) -> None:
    """Count a sign-in attempt against the client's rate limit; 429 when it is used up."""
    retry_after = await auth.sign_in_retry_after(request)
    if retry_after is not None:
        raise Problem(
            429,
            "Too many sign-in attempts",
            "Please wait a minute, then try again.",
            headers={"Retry-After": str(retry_after)},
        )


def sign_in_refused() -> Problem:
    """The one answer for every refused sign-in (unknown user, wrong password, locked)."""
    return Problem(401, "Sign-in failed", auth.INVALID_SIGN_IN, code="INVALID_CREDENTIALS")
