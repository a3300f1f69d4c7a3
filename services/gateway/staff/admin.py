"""Admin tab (administrators only): the audit log and staff users."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, staff_roles
from services.gateway.auth import Caller
from services.gateway.clinic_time import DATE_ERROR, parse_date
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.staff.common import admin_page, checked, form, invalid, redirect, render
from services.runtime.errors import precondition_text

AUDIT_PAGE = 50
ROLES = [(r, staff_roles.LABELS[r].capitalize()) for r in ("front_desk", "clinician", "admin")]
ROLE_LABEL = dict(ROLES)


def _render(
    request: web.Request, caller: Caller, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    return render(request, caller, template, context, active_tab="admin", status=status)


@admin_page
async def index(request: web.Request, caller: Caller) -> web.StreamResponse:
    return _render(request, caller, "staff/admin.html", {"active_nav": "admin"})


# --- Audit log ----------------------------------------------------------------------------------
# A patient filter (a name or chart number) is PHI, so the filter form is posted, never put in
# the address; links (Older, an actor's events) carry only ids, usernames, actions and dates.

AUDIT_FIELDS = ("patient", "staff", "action", "from", "to", "patient_id", "actor_id")
# The CSV export walks the filtered rows page by page, up to this many.
CSV_MOST = 50_000
CSV_PAGE = 500


@dataclass(frozen=True)
class AuditFilters:
    patient: str = ""  # a name or a chart number
    staff: str = ""  # a staff username
    action: str = ""
    date_from: str = ""
    date_to: str = ""
    patient_id: str = ""  # from a chart's link
    actor_id: str = ""  # from an actor's link

    @classmethod
    def read(cls, values: Mapping[str, str]) -> AuditFilters:
        get = {k: values.get(k, "").strip()[:100] for k in AUDIT_FIELDS}
        return cls(
            patient=get["patient"],
            staff=get["staff"],
            action=get["action"],
            date_from=get["from"],
            date_to=get["to"],
            patient_id=get["patient_id"],
            actor_id=get["actor_id"],
        )

    def pairs(self) -> dict[str, str]:
        every = {
            "patient": self.patient,
            "staff": self.staff,
            "action": self.action,
            "from": self.date_from,
            "to": self.date_to,
            "patient_id": self.patient_id,
            "actor_id": self.actor_id,
        }
        return {k: v for k, v in every.items() if v}

    def query(self, **extra: str) -> str:
        """For links: never the patient filter (a name), which only travels in a POST body."""
        return urlencode({k: v for k, v in {**self.pairs(), **extra}.items() if k != "patient"})


def _timestamp(day: date) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime(day.year, day.month, day.day, tzinfo=UTC))
    return ts


def _audit_request(
    filters: AuditFilters, before: str
) -> tuple[pb.ListAuditEventsRequest, dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    rpc = pb.ListAuditEventsRequest(
        patient=filters.patient,
        staff_username=filters.staff,
        actor_id=filters.actor_id,
        action=filters.action,
        limit=AUDIT_PAGE,
    )
    if filters.patient_id:
        try:
            rpc.patient_id = str(uuid.UUID(filters.patient_id))
        except ValueError:
            errors["patient_id"] = ["Patient id must be an id like 3f2c…, not a name."]
    for key, value in (("from", filters.date_from), ("to", filters.date_to)):
        if not value:
            continue
        day = parse_date(value)
        if day is None:
            errors[key] = [DATE_ERROR]
            continue
        if key == "from":
            rpc.since.CopyFrom(_timestamp(day))
        else:  # the whole "to" day is included
            rpc.until.CopyFrom(_timestamp(day + timedelta(days=1)))
    if before.isdigit():
        rpc.before_id = int(before)
    return rpc, errors


async def _events(
    request: web.Request, caller: Caller, rpc: pb.ListAuditEventsRequest
) -> tuple[list[pb.AuditEvent], dict[str, list[str]]]:
    try:
        reply = await request.app[BACKENDS].identity.ListAuditEvents(
            rpc, metadata=auth.metadata(request, caller)
        )
    except grpc.aio.AioRpcError as exc:
        found = invalid(exc)
        if found is None:
            raise
        return [], found
    return list(reply.items), {}


async def _audit_page(
    request: web.Request,
    caller: Caller,
    values: Mapping[str, str],
    errors: dict[str, list[str]],
    verification: pb.AuditLogVerification | None = None,
) -> web.Response:
    filters = AuditFilters.read(values)
    rpc, bad = _audit_request(filters, values.get("before_id", ""))
    errors = {**errors, **bad}
    items: list[pb.AuditEvent] = []
    if not errors:
        items, errors = await _events(request, caller, rpc)
    older = str(items[-1].id) if len(items) == AUDIT_PAGE else ""
    return _render(
        request,
        caller,
        "staff/audit.html",
        {
            "active_nav": "audit",
            "filters": filters,
            "filter_pairs": filters.pairs(),
            "items": items,
            "errors": errors,
            "older_id": older,
            "paging": bool(rpc.before_id),
            "verification": verification,
        },
        status=400 if errors else 200,
    )


@admin_page
async def audit(request: web.Request, caller: Caller) -> web.StreamResponse:
    query = {k: v for k, v in request.query.items() if k != "patient"}
    return await _audit_page(request, caller, query, {})


@admin_page
async def audit_filter(request: web.Request, caller: Caller) -> web.StreamResponse:
    values, bad = await form(request)
    return await _audit_page(request, caller, values, bad)


@admin_page
async def audit_verify(request: web.Request, caller: Caller) -> web.StreamResponse:
    result = await request.app[BACKENDS].identity.VerifyAuditLog(
        pb.VerifyAuditLogRequest(), metadata=auth.metadata(request, caller)
    )
    return await _audit_page(request, caller, {}, {}, verification=result)


@admin_page
async def audit_csv(request: web.Request, caller: Caller) -> web.StreamResponse:
    values, bad = await form(request)
    rpc, errors = _audit_request(AuditFilters.read(values), "")
    if bad or errors:
        return await _audit_page(request, caller, values, {**bad, **errors})
    rpc.limit = CSV_PAGE
    rows: list[pb.AuditEvent] = []
    while len(rows) < CSV_MOST:
        page, errors = await _events(request, caller, rpc)
        if errors:
            return await _audit_page(request, caller, values, errors)
        rows += page
        if len(page) < CSV_PAGE:
            break
        rpc.before_id = page[-1].id
    zone = request.app[SETTINGS].clinic_timezone
    stamp = datetime.now(zone).strftime("%Y%m%d-%H%M")
    return web.Response(
        text=audit_csv_text(rows[:CSV_MOST]),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="audit-log-{stamp}.csv"',
            "Cache-Control": "no-store",
        },
    )


CSV_COLUMNS = (
    "id",
    "time_utc",
    "actor_kind",
    "actor_id",
    "actor_name",
    "patient_id",
    "chart_number",
    "patient_name",
    "action",
    "outcome",
    "source_address",
    "detail",
)


def csv_cell(value: str) -> str:
    """Spreadsheets run a cell that starts with = + - @ (or tab, CR) as a formula: OWASP's
    CSV-injection advice is to prefix such cells with a quote, which shows as text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def audit_csv_text(rows: list[pb.AuditEvent]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in rows:
        at = e.at.ToDatetime(UTC).isoformat(timespec="microseconds") if e.HasField("at") else ""
        writer.writerow(
            csv_cell(str(v))
            for v in (
                e.id,
                at,
                e.actor_kind,
                e.actor_id,
                e.actor_name,
                e.patient_id,
                e.chart_number,
                e.patient_name,
                e.action,
                e.outcome,
                e.source_address,
                e.detail,
            )
        )
    return out.getvalue()


# --- Staff users ------------------------------------------------------------------------------


@admin_page
async def staff_users(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _staff_page(request, caller, {"role": "front_desk"}, {})


@admin_page
async def add_staff_user(request: web.Request, caller: Caller) -> web.StreamResponse:
    values, bad = await form(request)
    if bad:
        return await _staff_page(request, caller, values, bad)
    role = auth.ROLE_ENUM.get(values.get("role", ""))
    if role is None:
        return await _staff_page(request, caller, values, {"role": ["Choose a role."]})
    try:
        created = await request.app[BACKENDS].identity.CreateStaffUser(
            pb.CreateStaffUserRequest(
                username=values.get("username", ""),
                display_name=values.get("display_name", ""),
                role=role,
                password=values.get("password", ""),
            ),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        errors = invalid(exc)
        if errors is None:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                raise
            errors = {"username": ["That username is taken."]}
        return await _staff_page(request, caller, values, errors)
    if created.temporary_password:  # shown on this answer only
        issued = pb.TemporaryStaffPassword(temporary_password=created.temporary_password)
        return await _staff_page(
            request, caller, {"role": "front_desk"}, {}, issued=(created.id, issued)
        )
    return redirect(request, STAFF_URL, flash="staff-created")


STAFF_URL = "/staff/admin/staff"


def _user_id(request: web.Request, name: str = "user_id") -> str:
    try:
        return str(uuid.UUID(request.match_info[name]))
    except ValueError:
        raise web.HTTPNotFound(text="No such staff user.") from None


async def _staff_action(
    request: web.Request, caller: Caller, call: Any, flash: str
) -> web.StreamResponse:
    """Run one admin action from a posted form; refusals show on the staff page."""
    _, bad = await form(request)
    if bad:
        return await _staff_page(request, caller, {"role": "front_desk"}, bad)
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise web.HTTPNotFound(text="No such staff user or session.") from None
        if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        return await _staff_page(
            request, caller, {"role": "front_desk"}, {"_form": [precondition_text(exc)]}
        )
    return redirect(request, STAFF_URL, flash=flash)


@admin_page
async def set_disabled(request: web.Request, caller: Caller) -> web.StreamResponse:
    disabled = request.match_info["action"] == "disable"
    call = request.app[BACKENDS].identity.UpdateStaffUser(
        pb.UpdateStaffUserRequest(id=_user_id(request), disabled=disabled),
        metadata=auth.metadata(request, caller),
    )
    return await _staff_action(request, caller, call, "staff-updated")


@admin_page
async def set_role(request: web.Request, caller: Caller) -> web.StreamResponse:
    values, _ = await form(request)
    role = auth.ROLE_ENUM.get(values.get("role", ""))
    if role is None:
        return await _staff_page(
            request, caller, {"role": "front_desk"}, {"_form": ["Choose a role."]}
        )
    call = request.app[BACKENDS].identity.UpdateStaffUser(
        pb.UpdateStaffUserRequest(id=_user_id(request), role=role),
        metadata=auth.metadata(request, caller),
    )
    return await _staff_action(request, caller, call, "staff-updated")


@admin_page
async def unlock_staff_user(request: web.Request, caller: Caller) -> web.StreamResponse:
    call = request.app[BACKENDS].identity.UnlockStaffUser(
        pb.UnlockStaffUserRequest(id=_user_id(request)), metadata=auth.metadata(request, caller)
    )
    return await _staff_action(request, caller, call, "staff-unlocked")


@admin_page
async def reset_staff_mfa(request: web.Request, caller: Caller) -> web.StreamResponse:
    call = request.app[BACKENDS].identity.ResetStaffMfa(
        pb.ResetStaffMfaRequest(id=_user_id(request)), metadata=auth.metadata(request, caller)
    )
    return await _staff_action(request, caller, call, "staff-mfa-reset")


@admin_page
async def revoke_session(request: web.Request, caller: Caller) -> web.StreamResponse:
    call = request.app[BACKENDS].identity.RevokeStaffSession(
        pb.RevokeStaffSessionRequest(session_id=_user_id(request, "session_id")),
        metadata=auth.metadata(request, caller),
    )
    return await _staff_action(request, caller, call, "session-revoked")


@admin_page
async def reset_staff_password(request: web.Request, caller: Caller) -> web.StreamResponse:
    """The temporary password is shown on this answer only (no redirect, nothing stored)."""
    _, bad = await form(request)
    if bad:
        return await _staff_page(request, caller, {"role": "front_desk"}, bad)
    user_id = _user_id(request)
    try:
        issued = await request.app[BACKENDS].identity.ResetStaffPassword(
            pb.ResetStaffPasswordRequest(id=user_id), metadata=auth.metadata(request, caller)
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise web.HTTPNotFound(text="No such staff user.") from None
        raise
    return await _staff_page(request, caller, {"role": "front_desk"}, {}, issued=(user_id, issued))


@admin_page
async def set_mfa_policy(request: web.Request, caller: Caller) -> web.StreamResponse:
    values, bad = await form(request)
    if bad:
        return await _staff_page(request, caller, {"role": "front_desk"}, bad)
    roles = [auth.ROLE_ENUM[value] for value, _ in ROLES if checked(values, f"required_{value}")]
    await request.app[BACKENDS].identity.SetStaffMfaPolicy(
        pb.SetStaffMfaPolicyRequest(required_roles=roles), metadata=auth.metadata(request, caller)
    )
    return redirect(request, STAFF_URL, flash="mfa-policy-saved")


async def _staff_page(
    request: web.Request,
    caller: Caller,
    values: dict[str, str],
    errors: dict[str, list[str]],
    issued: tuple[str, pb.TemporaryStaffPassword] | None = None,
) -> web.Response:
    reply = await request.app[BACKENDS].identity.ListStaffUsers(
        pb.ListStaffUsersRequest(), metadata=auth.metadata(request, caller)
    )
    live = await request.app[BACKENDS].identity.ListStaffSessions(
        pb.ListStaffSessionsRequest(), metadata=auth.metadata(request, caller)
    )
    policy = await request.app[BACKENDS].identity.GetStaffMfaPolicy(
        pb.GetStaffMfaPolicyRequest(), metadata=auth.metadata(request, caller)
    )
    users = list(reply.items)
    issued_to = next((u for u in users if issued and u.id == issued[0]), None)
    return _render(
        request,
        caller,
        "staff/staff_users.html",
        {
            "active_nav": "staff",
            "users": users,
            "sessions": list(live.items),
            "current_session": caller.session.session_id,
            "issued": issued[1] if issued else None,
            "issued_to": issued_to,
            "locked": lambda u: u.HasField("locked_until"),
            "values": values,
            "errors": errors,
            "roles": ROLES,
            "mfa_required": {auth.ROLE_NAME.get(r, "") for r in policy.required_roles},
            "role_label": lambda u: ROLE_LABEL.get(auth.ROLE_NAME.get(u.role, ""), ""),
        },
        status=400 if errors else 200,
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/staff/admin", index)
    app.router.add_get("/staff/admin/audit", audit)
    app.router.add_post("/staff/admin/audit", audit_filter)
    app.router.add_post("/staff/admin/audit.csv", audit_csv)
    app.router.add_post("/staff/admin/audit/verify", audit_verify)
    app.router.add_get("/staff/admin/staff", staff_users)
    app.router.add_post("/staff/admin/staff", add_staff_user)
    app.router.add_post(STAFF_URL + "/mfa-policy", set_mfa_policy)
    one = STAFF_URL + "/{user_id}"
    app.router.add_post(one + "/{action:disable|enable}", set_disabled)
    app.router.add_post(one + "/role", set_role)
    app.router.add_post(one + "/password-reset", reset_staff_password)
    app.router.add_post(one + "/unlock", unlock_staff_user)
    app.router.add_post(one + "/mfa-reset", reset_staff_mfa)
    app.router.add_post("/staff/admin/sessions/{session_id}/revoke", revoke_session)
