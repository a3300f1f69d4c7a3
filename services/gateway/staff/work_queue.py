"""The staff work queue page: what patients did and what waits for staff, from every service.

services/gateway/work_queue.py merges the services' own queues (asked at once; one that is down
leaves out its part, which the page names). Each row links to the patient's chart and to the
page where it is decided. Names come from identity in one batch call (GetPatientSummaries)
(staff.common.patient_names).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from services.gateway import work_queue
from services.gateway.auth import Caller
from services.gateway.context import SETTINGS
from services.gateway.records_view import REFILL_STATUS_BY_NAME
from services.gateway.staff.common import format_when, patient_names, render, staff_page

URL = "/staff/work-queue"
SHOWN = 100  # rows on the page, newest first
STATUS_LEVELS = {
    "pending": "info",
    "requested": "info",
    "completed": "info",
    "signed": "info",
    "booked": "success",
    "approved": "success",
    "accepted": "success",
    "rescheduled": "warning",
    "needs_appointment": "warning",
    "cancelled": "danger",
    "denied": "danger",
    "rejected": "danger",
}


@dataclass(frozen=True)
class Row:
    kind: str
    kind_label: str
    id: str
    patient_id: str
    patient_name: str
    summary: str
    when: str
    status: str
    status_label: str
    level: str
    decision_url: str


def decision_url(item: work_queue.Item) -> str:
    """Where staff decide on this item: its own page, or its row on the kind's list page."""
    if item.kind == "portal_booking":
        return f"/staff/appointments/{item.id}"
    if item.kind == "form_review":
        return f"/staff/patients/{item.patient_id}/forms/{item.id}"
    if item.kind == "refill_request":
        status = item.status if item.status in REFILL_STATUS_BY_NAME else ""
        query = urlencode({"status": status, "patient_id": item.patient_id})
        return f"/staff/refills?{query}#refill-{item.id}"
    if item.kind == "profile_update":
        return f"/staff/profile-updates#update-{item.id}"
    return ""


@staff_page
async def page(request: web.Request, caller: Caller) -> web.StreamResponse:
    kind = request.query.get("kind", "")
    kind = kind if kind in work_queue.KINDS else ""
    status = request.query.get("status", "")
    status = status if status in work_queue.STATUSES else ""
    queue = await work_queue.merged(request, caller, kind, status)
    if not kind and not status:
        work_queue.remember(request, queue)
    shown = queue.items[:SHOWN]
    names = await patient_names(request, caller, [i.patient_id for i in shown])
    zone = request.app[SETTINGS].clinic_timezone
    rows = [
        Row(
            kind=i.kind,
            kind_label=work_queue.KIND_LABELS.get(i.kind, i.kind),
            id=i.id,
            patient_id=i.patient_id,
            patient_name=names.get(i.patient_id, ""),
            summary=i.summary,
            when=format_when(i.created_at, zone),
            status=i.status,
            status_label=i.status.replace("_", " ").capitalize(),
            level=STATUS_LEVELS.get(i.status, ""),
            decision_url=decision_url(i),
        )
        for i in shown
    ]
    return render(
        request,
        caller,
        "staff/work_queue.html",
        {
            "rows": rows,
            "total": len(queue.items),
            "outages": [o.message for o in queue.outages],
            "kind": kind,
            "status": status,
            "kinds": [("", "Every kind"), *work_queue.KIND_LABELS.items()],
            "statuses": [("", "Waiting for staff")]
            + [(s, s.replace("_", " ").capitalize()) for s in work_queue.STATUSES],
        },
        active_tab="work-queue",
    )


def setup(app: web.Application) -> None:
    app[work_queue.BADGE] = work_queue.BadgeCache()
    app.router.add_get(URL, page)
