"""Patients → Forms review queue: completed and signed forms waiting for review, newest first.

Patients show as "Last, First" (one GetPatientSummaries call per page, audited by identity).
A form opened from here carries `?from=review-queue`, so that its review comes back here.
"""

from __future__ import annotations

from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth, form_view
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS
from services.gateway.staff.common import patient_names, render, staff_page

PAGE = 50
URL = "/staff/forms/review"
FROM = "review-queue"  # the chart form page's ?from= (and review form field) for this queue


@staff_page
async def review_queue(request: web.Request, caller: Caller) -> web.StreamResponse:
    token = request.query.get("page", "")[:200]
    reply = await request.app[BACKENDS].forms.ListReviewQueue(
        pb.ListReviewQueueRequest(page_size=PAGE, page_token=token),
        metadata=auth.metadata(request, caller),
    )
    items = list(reply.items)
    names = await patient_names(request, caller, [f.patient_id for f in items])
    return render(
        request,
        caller,
        "staff/review_queue.html",
        {
            "items": items,
            "names": names,
            "from_queue": FROM,
            "next_page": reply.next_page_token,
            "first_page": bool(token),
            "active_nav": "review-queue",
            "kind_label": form_view.kind_label,
            "status_label": form_view.status_label,
            "status_level": form_view.status_level,
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_get(URL, review_queue)
