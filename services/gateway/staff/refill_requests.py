"""Refill requests (staff): pending ones first by default, filtered by status and optionally by
patient; each pending one is approved (note optional), denied (reason required) or marked
"needs appointment". The work queue page links here."""

from __future__ import annotations

from typing import Any

import grpc
from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.records_view import REFILL_STATUS, REFILL_STATUS_BY_NAME, refill_status
from services.gateway.staff.common import (
    form,
    format_when,
    invalid,
    redirect,
    render,
    staff_page,
    when,
)
from services.runtime.errors import FieldErrors, precondition_text

URL = "/staff/refills"
DECISIONS = [
    ("approved", "Approve"),
    ("denied", "Deny"),
    ("needs_appointment", "Needs an appointment"),
]
STATUS_FILTER = [("", "Every status")] + [(n, label) for n, label, _ in REFILL_STATUS.values()]


def _filters(request: web.Request) -> tuple[str, str]:
    status = request.query.get("status", "requested")
    if status and status not in REFILL_STATUS_BY_NAME:
        status = "requested"
    return status, request.query.get("patient_id", "")


@staff_page
async def page(request: web.Request, caller: Caller) -> web.StreamResponse:
    return await _render(request, caller, {}, {})


async def _render(
    request: web.Request,
    caller: Caller,
    errors: FieldErrors,
    values: dict[str, str],
    status_code: int = 200,
) -> web.Response:
    status, patient = _filters(request)
    try:
        listed = await request.app[BACKENDS].forms.ListRefillRequests(
            pb.ListRefillRequestsRequest(
                patient_id=patient,
                status=REFILL_STATUS_BY_NAME.get(status, pb.REFILL_STATUS_UNSPECIFIED),
            ),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise web.HTTPNotFound() from None
        raise
    zone = request.app[SETTINGS].clinic_timezone
    rows: list[dict[str, Any]] = []
    for r in listed.items:
        name, label, level = refill_status(r.status)
        rows.append(
            {
                "id": r.id,
                "patient_id": r.patient_id,
                "medication": " ".join(p for p in (r.medication, r.dose) if p),
                "quantity": r.quantity,
                "pharmacy": r.pharmacy,
                "note": r.note,
                "status": name,
                "status_label": label,
                "level": level,
                "answer": r.decision_note,
                "decided_by": r.decided_by,
                "requested": format_when(when(r.requested_at), zone),
                "pending": r.status == pb.REFILL_STATUS_REQUESTED,
            }
        )
    return render(
        request,
        caller,
        "staff/refill_requests.html",
        {
            "active_nav": "refills",
            "rows": rows,
            "status": status,
            "patient_id": patient,
            "statuses": STATUS_FILTER,
            "decisions": DECISIONS,
            "errors": errors,
            "values": values,
            "query": request.query_string,
        },
        status=status_code,
    )


@staff_page
async def decide(request: web.Request, caller: Caller) -> web.StreamResponse:
    values, bad = await form(request)
    refill_id = request.match_info["refill_id"]
    decision = REFILL_STATUS_BY_NAME.get(values.get("decision", ""), pb.REFILL_STATUS_UNSPECIFIED)
    if not bad:
        try:
            await request.app[BACKENDS].forms.DecideRefillRequest(
                pb.DecideRefillRequestRequest(
                    refill_request_id=refill_id, decision=decision, note=values.get("note", "")
                ),
                metadata=auth.metadata(request, caller),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise web.HTTPNotFound() from None
            found = invalid(exc)
            if found is None and exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                found = {"_form": [precondition_text(exc)]}
            if found is None:
                raise
            bad = found
    if bad:
        return await _render(
            request, caller, bad, {"refill_id": refill_id, **values}, status_code=400
        )
    back = f"{URL}?{request.query_string}" if request.query_string else URL
    return redirect(request, back, flash="refill-decided")


def setup(app: web.Application) -> None:
    app.router.add_get(URL, page)
    app.router.add_post(URL + "/{refill_id}/decision", decide)
