"""What every staff page shares: the signed-in guard, rendering, flash messages, ids and errors.

Handlers take `(request, caller)`; `staff_page` resolves the caller first and sends anyone
without a staff session to the sign-in page, so no handler can forget the check.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

import aiohttp_jinja2
import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from portal.identity.v1 import identity_pb2
from services.gateway import auth, form_text, staff_roles, work_queue
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.form_view import kind_label
from services.runtime.errors import FieldErrors, field_errors

LOGIN_URL = "/staff/login"
HOME_URL = "/staff/patients"
PASSWORD_URL = "/staff/password"  # noqa: S105 (a page address)
TWO_FACTOR_URL = "/staff/account/two-factor"

NAMED_PATIENTS = 200  # identity's limit for one GetPatientSummaries call

StaffHandler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class StaffView:
    """What templates show of the signed-in user (layout.html: staff.display_name, .role)."""

    display_name: str
    role: str


def staff_view(caller: Caller) -> StaffView:
    session = caller.session
    return StaffView(
        display_name=session.display_name or session.username,
        role=staff_roles.role(caller),
    )


def staff_page(handler: StaffHandler) -> Handler:
    """Run `handler` with the signed-in staff caller; others go to the sign-in page."""
    return _guard(handler, enrolment=False)


def enrolment_page(handler: StaffHandler) -> Handler:
    """As staff_page, and also for staff who must set up two-factor sign-in first."""
    return _guard(handler, enrolment=True)


def _guard(handler: StaffHandler, *, enrolment: bool) -> Handler:
    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        caller = await auth.staff_caller(request)
        if caller is None:
            raise web.HTTPSeeOther(LOGIN_URL)
        if caller.must_change_password:  # a temporary password: nothing else until changed
            raise web.HTTPSeeOther(PASSWORD_URL)
        if caller.must_enrol_mfa:  # their role requires a second factor: nothing else first
            if not enrolment:
                raise web.HTTPSeeOther(TWO_FACTOR_URL)
        elif request.method == "GET":  # a page: the navigation's work queue badge
            request[work_queue.BADGE_COUNT] = await work_queue.badge_count(request, caller)
        return await handler(request, caller)

    return guarded


def set_up_by(roles: Collection[str]) -> Callable[[StaffHandler], Handler]:
    """As staff_page, and only for these roles (services/gateway/staff_roles.py): others get a
    403 page saying who may (the pages do not offer them the form in the first place)."""

    def decorate(handler: StaffHandler) -> Handler:
        @functools.wraps(handler)
        async def allowed(request: web.Request, caller: Caller) -> web.StreamResponse:
            if not staff_roles.may(caller, roles):
                raise staff_roles.forbidden(roles)
            return await handler(request, caller)

        return staff_page(allowed)

    return decorate


admin_page = set_up_by(staff_roles.ADMIN)  # the Admin tab's pages


def practice_render(
    request: web.Request,
    caller: Caller,
    template: str,
    context: Mapping[str, Any],
    *,
    active_nav: str,
    status: int = 200,
) -> web.Response:
    """A page of the Practice tab (its left navigation marks `active_nav`), told what the
    caller's role may change (staff_roles.py): the pages offer only that, else read only."""
    return render(
        request,
        caller,
        template,
        {
            **context,
            "active_nav": active_nav,
            "kind_label": kind_label,
            "may_set_up": staff_roles.may(caller, staff_roles.PRACTICE_SETUP),
            "may_keep_hours": staff_roles.may(caller, staff_roles.AVAILABILITY),
            "may_edit_forms": staff_roles.may(caller, staff_roles.FORM_CATALOG),
        },
        active_tab="practice",
        status=status,
    )


async def patient_names(request: web.Request, caller: Caller, ids: list[str]) -> dict[str, str]:
    """ "Last, First" of each patient id, in one batch call to identity (which audits each
    read); beyond NAMED_PATIENTS distinct ids, or a patient identity no longer knows: absent."""
    distinct = list(dict.fromkeys(ids))[:NAMED_PATIENTS]
    if not distinct:
        return {}
    reply = await request.app[BACKENDS].identity.GetPatientSummaries(
        identity_pb2.GetPatientSummariesRequest(patient_ids=distinct),
        metadata=auth.metadata(request, caller),
    )
    return {p.id: f"{p.last_name}, {p.first_name}" for p in reply.items}


# --- Flash messages ---------------------------------------------------------------------
# One-time messages after a redirect travel as a key in a short-lived cookie. Only the key
# is sent, never text, so no PHI can end up in it; unknown keys are ignored.
FLASH_COOKIE = "portal_staff_flash"
FLASHES: dict[str, tuple[str, str]] = {
    "patient-added": ("success", "Patient added."),
    "who-saved": ("success", "Demographics saved."),
    "contact-saved": ("success", "Contact details saved."),
    "portal-allowed": ("success", "Choices saved. Allow Patient Portal is now Yes."),
    "portal-withdrawn": (
        "success",
        "Choices saved. Allow Patient Portal is No: the patient cannot use the portal.",
    ),
    "staff-created": ("success", "Staff user added."),
    "staff-updated": ("success", "Staff user changed."),
    "staff-unlocked": ("success", "Staff user unlocked."),
    "session-revoked": ("success", "Session ended."),
    "mfa-policy-saved": ("success", "Two-factor sign-in setting saved."),
    "staff-mfa-reset": (
        "success",
        "Two-factor sign-in removed: the user signs in with the password and sets it up again "
        "(at once if their role requires it).",
    ),
    "patient-mfa-reset": (
        "success",
        "Two-factor sign-in removed: the patient signs in with the password alone and can set "
        "it up again.",
    ),
    "password-changed": ("success", "Your password was changed."),
    "profile-update-accepted": ("success", "Change accepted: the patient's record now shows it."),
    "profile-update-rejected": ("success", "Change rejected: the patient's record is unchanged."),
    # Scheduling (Practice tab, chart and calendar).
    "provider-added": ("success", "Provider added. Set the working hours below."),
    "provider-renamed": ("success", "Provider renamed."),
    "provider-deactivated": (
        "success",
        "Provider deactivated: existing appointments stay, no new times are offered.",
    ),
    "provider-reactivated": ("success", "Provider reactivated: their hours offer times again."),
    "hours-saved": ("success", "Weekly hours saved."),
    "override-saved": ("success", "Hours for that date saved."),
    "override-removed": ("success", "That date follows the weekly hours again."),
    "time-off-added": ("success", "Time off added."),
    "time-off-over-bookings": (
        "warning",
        "Time off added. Appointments already booked in it stay booked: they are marked "
        "\u201cDuring time off\u201d below; open one to move or cancel it.",
    ),
    "time-off-removed": ("success", "Time off removed."),
    "type-saved": ("success", "Appointment type saved."),
    "appointment-booked": ("success", "Appointment booked."),
    "appointment-cancelled": ("success", "Appointment cancelled."),
    "appointment-rescheduled": ("success", "Appointment moved to the new time."),
    "appointment-status": ("success", "Appointment status updated."),
    "medication-added": ("success", "Medication added."),
    "medication-discontinued": ("success", "Medication discontinued."),
    "document-added": ("success", "Document added to the chart."),
    "letter-added": ("success", "Letter added to the chart."),
    "document-shared": ("success", "The document is now shared with the patient."),
    "document-unshared": ("success", "The document is no longer shared with the patient."),
    "refill-decided": ("success", "Decision saved; the patient sees it in the portal."),
    # Forms (staff/portal_forms.py, form_builder.py, chart_forms.py)
    "portal-forms-updated": ("success", "Patient Portal Forms updated."),
    "visit-forms-saved": ("success", "Visit forms saved."),
    "form-created": ("success", "Form created."),
    "form-saved": ("success", "Form saved."),
    "form-imported": ("success", "Questionnaire imported as a new form."),
    "chart-form-added": ("success", "Form added to the chart."),
    "chart-form-accepted": ("success", "Form accepted into the chart."),
    "chart-form-returned": ("success", "Form returned to the patient."),
}


def redirect(request: web.Request, location: str, flash: str | None = None) -> web.Response:
    """303 See Other to `location`, optionally with a one-time message for the next page."""
    response = web.Response(status=303, headers={"Location": location})
    if flash is not None:
        response.set_cookie(
            FLASH_COOKIE,
            flash,
            max_age=60,
            httponly=True,
            samesite="Strict",
            secure=request.app[SETTINGS].cookie_secure,
            path="/staff/",
        )
    return response


def _take_flash(request: web.Request) -> list[dict[str, str]]:
    found = FLASHES.get(request.cookies.get(FLASH_COOKIE, ""))
    return [{"level": found[0], "text": found[1]}] if found else []


def render(
    request: web.Request,
    caller: Caller | None,
    template: str,
    context: Mapping[str, Any],
    *,
    active_tab: str = "patients",
    status: int = 200,
) -> web.Response:
    """Render a staff template with `staff`, `active_tab` and any one-time message."""
    messages = _take_flash(request) + list(context.get("messages", []))
    full = {
        **context,
        "staff": staff_view(caller) if caller is not None else None,
        "active_tab": active_tab,
        "messages": messages,
        "work_queue_count": request.get(work_queue.BADGE_COUNT),
        "format_time": lambda ts: format_when(when(ts), request.app[SETTINGS].clinic_timezone),
    }
    response = aiohttp_jinja2.render_template(template, request, full, status=status)
    if FLASH_COOKIE in request.cookies:
        response.del_cookie(FLASH_COOKIE, path="/staff/")
    return response


# --- Request values -----------------------------------------------------------------------


def patient_id(request: web.Request) -> str:
    """The patient id from the URL; anything that is not an id is a 404, like an unknown one."""
    raw = request.match_info["patient_id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise web.HTTPNotFound() from None


def realm(request: web.Request) -> str:
    name = request.match_info["realm"]
    if name not in auth.REALMS:
        raise web.HTTPNotFound()
    return name


async def form(request: web.Request) -> form_text.Posted:
    """The posted form's text fields, stripped, and the text rule's messages by field name.

    Handlers re-render their form with a 400 when the messages are not empty.
    """
    return await form_text.read(request)


def checked(values: Mapping[str, str], name: str) -> bool:
    return values.get(name, "") not in ("", "0", "false", "no")


# --- Backend errors -----------------------------------------------------------------------


def invalid(
    exc: grpc.aio.AioRpcError, names: Mapping[str, str] | None = None
) -> FieldErrors | None:
    """The field messages of an INVALID_ARGUMENT error, or None for any other error.

    `names` maps a service's field path (weekly[1].end) to the page's field name; a path it
    does not name becomes its last part (fields.first_name → first_name)."""
    if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
        return None
    errors: FieldErrors = {}
    for path, messages in field_errors(exc).items():
        name = (names or {}).get(path) or path.rsplit(".", 1)[-1]
        errors.setdefault(name, []).extend(messages)
    return errors or {"_form": [exc.details() or form_text.CHECK_FORM]}


# --- Display --------------------------------------------------------------------------------


def when(ts: Timestamp | None) -> datetime | None:
    """A protobuf timestamp as an aware datetime (None when unset)."""
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=UTC)


def format_when(value: datetime | None, zone: tzinfo = UTC) -> str:
    """In the clinic's time zone, which the text names (e.g. "CET", "UTC")."""
    if value is None:
        return ""
    return value.astimezone(zone).strftime("%d %b %Y, %H:%M %Z")
