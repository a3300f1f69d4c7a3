"""Staff remove a patient's second factor of one realm (a lost phone): a confirmation page,
then identity's ResetPatientMfa (audited there as mfa.reset) and back to the chart."""

from __future__ import annotations

from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS
from services.gateway.demographics import REALM_LABEL
from services.gateway.staff.common import form, realm, redirect, render, staff_page
from services.gateway.staff.patients import fetch_patient, patient_context


def _account(patient: pb.Patient, realm_name: str) -> pb.PortalAccount | None:
    wanted = auth.REALM_ENUM[realm_name]
    return next((a for a in patient.accounts if a.realm == wanted), None)


@staff_page
async def confirm_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    realm_name = realm(request)
    patient = await fetch_patient(request, caller)
    account = _account(patient, realm_name)
    if account is None:
        raise web.HTTPNotFound(text="This patient has no account in that portal.")
    return render(
        request,
        caller,
        "staff/patient_mfa_reset.html",
        {
            **patient_context(patient),
            "realm": realm_name,
            "realm_label": REALM_LABEL[realm_name],
            "account": account,
        },
    )


@staff_page
async def reset(request: web.Request, caller: Caller) -> web.StreamResponse:
    realm_name = realm(request)
    _, bad = await form(request)
    patient = await fetch_patient(request, caller)
    if bad or _account(patient, realm_name) is None:
        raise web.HTTPNotFound(text="This patient has no account in that portal.")
    await request.app[BACKENDS].identity.ResetPatientMfa(
        pb.ResetPatientMfaRequest(patient_id=patient.id, realm=auth.REALM_ENUM[realm_name]),
        metadata=auth.metadata(request, caller),
    )
    return redirect(request, f"/staff/patients/{patient.id}", flash="patient-mfa-reset")


def setup(app: web.Application) -> None:
    url = "/staff/patients/{patient_id}/portal/{realm}/mfa-reset"
    app.router.add_get(url, confirm_form)
    app.router.add_post(url, reset)
