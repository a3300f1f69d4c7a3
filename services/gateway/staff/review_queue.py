"""Patients → Forms review queue: completed and signed forms waiting for review, newest first."""

from __future__ import annotations

from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth, form_view
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS
from services.gateway.staff.common import render, staff_page

PAGE = 50


@staff_page
async def review_queue(request: web.Request, caller: Caller) -> web.StreamResponse:
    token = request.query.get("page", "")[:200]
    reply = await request.app[BACKENDS].forms.ListReviewQueue(
        pb.ListReviewQueueRequest(page_size=PAGE, page_token=token),
        metadata=auth.metadata(request, caller),
    )
    return render(
        request,
        caller,
        "staff/review_queue.html",
        {
            "items": list(reply.items),
            "next_page": reply.next_page_token,
            "first_page": bool(token),
            "active_nav": "review-queue",
            "kind_label": form_view.kind_label,
            "status_label": form_view.status_label,
            "status_level": form_view.status_level,
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/staff/forms/review", review_queue)
