"""Patients → Profile updates: patients' requests to change their contact details.

Each request shows the patient's values beside the proposed ones; staff accept (identity writes
the proposed fields to the record) or reject, with a note the patient reads. The status filter
travels in the URL (a status, never patient data).
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, contact_changes
from services.gateway.auth import Caller
from services.gateway.contact_changes import LABELS
from services.gateway.context import BACKENDS
from services.gateway.staff.common import form, invalid, redirect, render, staff_page
from services.runtime.errors import FieldErrors, precondition_text

URL = "/staff/profile-updates"
FILTERS = [
    ("pending", "Waiting for a decision"),
    ("accepted", "Accepted"),
    ("rejected", "Rejected"),
    ("all", "All"),
]
CAPTIONS = dict(FILTERS)


@dataclass(frozen=True)
class Row:
    label: str
    current: list[str]
    proposed: list[str]


@dataclass(frozen=True)
class Item:
    """One request as the page shows it: a table of current beside proposed values."""

    update: pb.ProfileUpdate
    status_label: str
    badge: str
    rows: list[Row]


def item(update: pb.ProfileUpdate) -> Item:
    label, badge = contact_changes.status(update.status)
    rows = [
        Row(
            LABELS[name],
            contact_changes.lines(name, getattr(update.current, name)),
            contact_changes.lines(name, getattr(update.proposed, name)),
        )
        for name in contact_changes.asked(update.proposed)
    ]
    return Item(update, label, badge, rows)


def _status(request: web.Request) -> str:
    status = request.query.get("status", "pending")
    if status not in CAPTIONS:
        raise web.HTTPNotFound()
    return status


async def _page(
    request: web.Request,
    caller: Caller,
    status: str,
    *,
    errors: dict[str, FieldErrors] | None = None,
    notes: dict[str, str] | None = None,
    refusal: str = "",
    code: int = 200,
) -> web.Response:
    reply = await request.app[BACKENDS].identity.ListProfileUpdates(
        pb.ListProfileUpdatesRequest(status="" if status == "all" else status),
        metadata=auth.metadata(request, caller),
    )
    return render(
        request,
        caller,
        "staff/profile_updates.html",
        {
            "active_nav": "profile-updates",
            "status": status,
            "filters": FILTERS,
            "caption": CAPTIONS[status],
            "items": [item(u) for u in reply.items],
            "errors": errors or {},
            "notes": notes or {},
            "messages": [{"level": "error", "text": refusal}] if refusal else [],
        },
        status=code,
    )


@staff_page
async def index(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _page(request, caller, _status(request))


@staff_page
async def decide(request: web.Request, caller: Caller) -> web.StreamResponse:
    update_id = request.match_info["update_id"]
    posted, refused = await form(request)
    decision, note = posted.get("decision", ""), posted.get("note", "")
    problem = "; ".join(refused.get("note", [])) or None
    if refused and problem is None:
        raise web.HTTPBadRequest(text="The form holds text that is not allowed.")
    if problem is not None:
        return await _page(
            request,
            caller,
            "pending",
            errors={update_id: {"note": [problem]}},
            notes={update_id: note},
            code=400,
        )
    try:
        await request.app[BACKENDS].identity.DecideProfileUpdate(
            pb.DecideProfileUpdateRequest(id=update_id, decision=decision, note=note),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise web.HTTPNotFound() from None
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return await _page(request, caller, "pending", refusal=precondition_text(exc), code=409)
        found = invalid(exc)
        if found is None:
            raise
        if "id" in found:
            raise web.HTTPNotFound() from None
        return await _page(
            request,
            caller,
            "pending",
            errors={update_id: found},
            notes={update_id: note},
            code=400,
        )
    flash = "profile-update-accepted" if decision == "accept" else "profile-update-rejected"
    return redirect(request, URL, flash=flash)


def setup(app: web.Application) -> None:
    app.router.add_get(URL, index)
    app.router.add_post(URL + "/{update_id}/decision", decide)
