"""Patients tab: Patient Search/Add, and the Patient Summary Chart."""

from __future__ import annotations

from typing import Any

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.demographics import PATIENT_FIELDS, SEXES, sex_label
from services.gateway.staff import portal_status
from services.gateway.staff.common import (
    form,
    invalid,
    patient_id,
    redirect,
    render,
    staff_page,
)
from services.gateway.staff.sections import forms_section
from services.runtime.errors import detail_of, precondition_kind, precondition_text

SEARCH_LIMIT = 50


def full_name(p: pb.Patient | pb.PatientSummary) -> str:
    middle = getattr(p, "middle_name", "")
    return " ".join(part for part in (p.first_name, middle, p.last_name) if part)


# --- Search ---------------------------------------------------------------------------------
# The query is posted, never put in the URL: names are PHI and URLs end up in logs and history.


@staff_page
async def search_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    return _search_page(request, caller, query="", results=None)


@staff_page
async def search(request: web.Request, caller: Caller) -> web.StreamResponse:
    posted, bad = await form(request)
    query = posted.get("query", "")
    if bad:
        return _search_page(request, caller, query=query, results=None, errors=bad, status=400)
    if not query:
        return _search_page(
            request,
            caller,
            query="",
            results=None,
            errors={"query": ["Enter a name, date of birth or chart number."]},
            status=400,
        )
    try:
        reply = await request.app[BACKENDS].identity.SearchPatients(
            pb.SearchPatientsRequest(query=query, limit=SEARCH_LIMIT),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        errors = invalid(exc)
        if errors is None:
            raise
        return _search_page(request, caller, query=query, results=None, errors=errors, status=400)
    return _search_page(request, caller, query=query, results=list(reply.items))


def _search_page(
    request: web.Request,
    caller: Caller,
    *,
    query: str,
    results: list[pb.PatientSummary] | None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        caller,
        "staff/patient_search.html",
        {
            "active_nav": "patient-search",
            "query": query,
            "results": results,
            "limit": SEARCH_LIMIT,
            "errors": errors or {},
            "full_name": full_name,
        },
        status=status,
    )


# --- Add ------------------------------------------------------------------------------------


@staff_page
async def new_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    return _new_page(request, caller, values={"sex": ""})


@staff_page
async def create(request: web.Request, caller: Caller) -> web.StreamResponse:
    values, bad = await form(request)
    if bad:
        return _new_page(request, caller, values=values, errors=bad, status=400)
    fields = pb.PatientFields(**{name: values.get(name, "") for name in PATIENT_FIELDS})
    confirm = values.get("confirm_duplicate") == "1"
    identity = request.app[BACKENDS].identity
    try:
        reply = await identity.RegisterPatient(
            pb.RegisterPatientRequest(fields=fields, confirm_duplicate=confirm),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        errors = invalid(exc)
        if errors is not None:
            return _new_page(request, caller, values=values, errors=errors, status=400)
        if precondition_kind(exc) == "DUPLICATE_PATIENT":
            # Identity names the patients it took for the same person: the page lists them.
            found = detail_of(exc, pb.PossibleDuplicates)
            return _new_page(
                request,
                caller,
                values=values,
                duplicates=list(found.patients) if found else [],
                reason=precondition_text(exc),
                status=409,
            )
        raise
    return redirect(request, f"/staff/patients/{reply.patient.id}", flash="patient-added")


def _new_page(
    request: web.Request,
    caller: Caller,
    *,
    values: dict[str, str],
    errors: dict[str, list[str]] | None = None,
    duplicates: list[pb.PatientSummary] | None = None,
    reason: str = "",
    status: int = 200,
) -> web.Response:
    return render(
        request,
        caller,
        "staff/patient_new.html",
        {
            "active_nav": "patient-search",
            "values": values,
            "errors": errors or {},
            "duplicates": duplicates,
            "reason": reason,
            "sexes": SEXES,
            "full_name": full_name,
        },
        status=status,
    )


# --- Patient Summary Chart ------------------------------------------------------------------


async def fetch_patient(request: web.Request, caller: Caller) -> pb.Patient:
    """The patient named in the URL; a 404 page when there is no such patient."""
    try:
        patient: pb.Patient = await request.app[BACKENDS].identity.GetPatient(
            pb.GetPatientRequest(patient_id=patient_id(request)),
            metadata=auth.metadata(request, caller),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise web.HTTPNotFound() from None
        raise
    return patient


def patient_context(patient: pb.Patient) -> dict[str, Any]:
    """What every page about one patient shows in its header."""
    return {
        "patient": patient,
        "patient_name": full_name(patient),
        "patient_url": f"/staff/patients/{patient.id}",
        "menu_items": portal_status.patient_info_menu(patient),
        "active_nav": "patient-search",
    }


@staff_page
async def chart(request: web.Request, caller: Caller) -> web.StreamResponse:
    patient = await fetch_patient(request, caller)
    forms = await forms_section(request, caller, patient.id)  # degrades alone if forms is down
    return render(
        request,
        caller,
        "staff/chart.html",
        {
            **patient_context(patient),
            "forms": forms,
            "sex_label": sex_label(patient.sex),
            "realms": portal_status.realm_statuses(patient, request.app[SETTINGS].clinic_timezone),
        },
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/staff/patients", search_form)
    app.router.add_post("/staff/patients", search)
    app.router.add_get("/staff/patients/new", new_form)
    app.router.add_post("/staff/patients/new", create)
    app.router.add_get("/staff/patients/{patient_id}", chart)
