"""Admin tab (administrators only): the audit log and staff users."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS
from services.gateway.staff.common import admin_page, form, invalid, redirect, render

AUDIT_PAGE = 50
ROLES = [("front_desk", "Front desk"), ("clinician", "Clinician"), ("admin", "Admin")]
ROLE_LABEL = dict(ROLES)


def _render(
    request: web.Request, caller: Caller, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    return render(request, caller, template, context, active_tab="admin", status=status)


@admin_page
async def index(request: web.Request, caller: Caller) -> web.StreamResponse:
    return _render(request, caller, "staff/admin.html", {"active_nav": "admin"})


# --- Audit log ----------------------------------------------------------------------------------
# Filters are ids, action names and dates only, so the query string never carries PHI.


@dataclass(frozen=True)
class AuditFilters:
    patient_id: str = ""
    actor_id: str = ""
    action: str = ""
    date_from: str = ""
    date_to: str = ""

    def query(self, **extra: str) -> str:
        pairs = {
            "patient_id": self.patient_id,
            "actor_id": self.actor_id,
            "action": self.action,
            "from": self.date_from,
            "to": self.date_to,
            **extra,
        }
        return urlencode({k: v for k, v in pairs.items() if v})


def _timestamp(day: date) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(datetime(day.year, day.month, day.day, tzinfo=UTC))
    return ts


def _audit_request(
    request: web.Request,
) -> tuple[AuditFilters, pb.ListAuditEventsRequest, dict[str, list[str]]]:
    q = request.query
    filters = AuditFilters(
        patient_id=q.get("patient_id", "").strip(),
        actor_id=q.get("actor_id", "").strip(),
        action=q.get("action", "").strip(),
        date_from=q.get("from", "").strip(),
        date_to=q.get("to", "").strip(),
    )
    errors: dict[str, list[str]] = {}
    rpc = pb.ListAuditEventsRequest(
        actor_id=filters.actor_id[:100], action=filters.action[:100], limit=AUDIT_PAGE
    )
    if filters.patient_id:
        try:
            rpc.patient_id = str(uuid.UUID(filters.patient_id))
        except ValueError:
            errors["patient_id"] = ["Patient id must be an id like 3f2c…, not a name."]
    for key, value in (("from", filters.date_from), ("to", filters.date_to)):
        if not value:
            continue
        try:
            day = date.fromisoformat(value)
        except ValueError:
            errors[key] = ["Enter a date like 2026-01-31."]
            continue
        if key == "from":
            rpc.since.CopyFrom(_timestamp(day))
        else:  # the whole "to" day is included
            rpc.until.CopyFrom(_timestamp(day + timedelta(days=1)))
    before = q.get("before_id", "")
    if before.isdigit():
        rpc.before_id = int(before)
    return filters, rpc, errors


@admin_page
async def audit(request: web.Request, caller: Caller) -> web.StreamResponse:
    filters, rpc, errors = _audit_request(request)
    items: list[pb.AuditEvent] = []
    if not errors:
        try:
            reply = await request.app[BACKENDS].identity.ListAuditEvents(
                rpc, metadata=auth.metadata(request, caller)
            )
        except grpc.aio.AioRpcError as exc:
            found = invalid(exc)
            if found is None:
                raise
            errors = found
        else:
            items = list(reply.items)
    older = ""
    if len(items) == AUDIT_PAGE:
        older = "/staff/admin/audit?" + filters.query(before_id=str(items[-1].id))
    return _render(
        request,
        caller,
        "staff/audit.html",
        {
            "active_nav": "audit",
            "filters": filters,
            "items": items,
            "errors": errors,
            "older_url": older,
            "newest_url": "/staff/admin/audit?" + filters.query() if rpc.before_id else "",
        },
        status=400 if errors else 200,
    )


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
        await request.app[BACKENDS].identity.CreateStaffUser(
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
    return redirect(request, "/staff/admin/staff", flash="staff-created")


async def _staff_page(
    request: web.Request, caller: Caller, values: dict[str, str], errors: dict[str, list[str]]
) -> web.Response:
    reply = await request.app[BACKENDS].identity.ListStaffUsers(
        pb.ListStaffUsersRequest(), metadata=auth.metadata(request, caller)
    )
    return _render(
        request,
        caller,
        "staff/staff_users.html",
        {
            "active_nav": "staff",
            "users": list(reply.items),
            "values": values,
            "errors": errors,
            "roles": ROLES,
            "role_label": lambda u: ROLE_LABEL.get(auth.ROLE_NAME.get(u.role, ""), ""),
        },
        status=400 if errors else 200,
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/staff/admin", index)
    app.router.add_get("/staff/admin/audit", audit)
    app.router.add_get("/staff/admin/staff", staff_users)
    app.router.add_post("/staff/admin/staff", add_staff_user)
