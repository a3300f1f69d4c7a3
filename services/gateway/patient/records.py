"""The patient's Records page: documents the clinic shared, their completed forms and signature
certificates, newest first, each viewable and downloadable. forms takes the patient from the
principal, so an id in the URL is only found among the patient's own (another's is a 404);
forms audits every download."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import aiohttp_jinja2
import grpc
from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth
from services.gateway.backends import PDF_DEADLINE
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.patient import present
from services.gateway.patient.session import my_profile, signed_in
from services.gateway.patient.views import page_context
from services.gateway.records_view import document_response
from services.gateway.staff.common import format_when, when

KIND_LABEL = {"document": "", "form": "Completed form", "certificate": "Signed form"}
CATEGORY_LABEL = {"letter": "Letter", "report": "Report", "record": "Record", "form": "Form"}
KIND_PATH = {"document": "documents", "form": "forms", "certificate": "certificates"}


async def page(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    listed = await request.app[BACKENDS].forms.ListRecords(
        pb.ListRecordsRequest(), metadata=auth.metadata(request, who)
    )
    patient = present.profile(await my_profile(request, who))
    zone = request.app[SETTINGS].clinic_timezone
    records: list[dict[str, Any]] = [
        {
            "title": r.title,
            "kind": KIND_LABEL.get(r.kind, ""),
            "category": CATEGORY_LABEL.get(r.category, r.category),
            "when": format_when(when(r.created_at), zone),
            "href": f"records/{KIND_PATH[r.kind]}/{r.id}",
            "is_pdf": r.content_type == "application/pdf",
        }
        for r in listed.items
        if r.kind in KIND_PATH
    ]
    return aiohttp_jinja2.render_template(
        "patient/records.html",
        request,
        page_context(request, who, patient, "records", records=records),
    )


async def _content(call: Awaitable[pb.DocumentContent]) -> web.Response:
    try:
        found = await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            raise web.HTTPNotFound() from None
        raise
    return document_response(found.content, found.content_type, found.filename)


async def document(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return await _content(
        request.app[BACKENDS].forms.GetDocumentContent(
            pb.GetDocumentContentRequest(document_id=request.match_info["item_id"]),
            metadata=auth.metadata(request, who),
        )
    )


async def form_pdf(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return await _content(
        request.app[BACKENDS].forms.GetChartFormPdf(
            pb.GetChartFormPdfRequest(chart_form_id=request.match_info["item_id"]),
            metadata=auth.metadata(request, who),
            timeout=PDF_DEADLINE,
        )
    )


async def certificate(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    try:
        found = await request.app[BACKENDS].forms.GetSignatureCertificate(
            pb.GetSignatureCertificateRequest(chart_form_id=request.match_info["item_id"]),
            metadata=auth.metadata(request, who),
            timeout=PDF_DEADLINE,
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            raise web.HTTPNotFound() from None
        raise
    return document_response(found.pdf, "application/pdf", found.filename)
