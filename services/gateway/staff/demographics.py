"""Demographics → Edit: the Who, Contact and Choices tabs, each saving only its own fields."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS
from services.gateway.demographics import SEXES
from services.gateway.staff.common import (
    checked,
    form,
    invalid,
    patient_id,
    redirect,
    render,
    staff_page,
)
from services.gateway.staff.patients import fetch_patient, patient_context


@dataclass(frozen=True)
class Tab:
    key: str
    label: str
    fields: tuple[str, ...]  # the update_mask this tab sends


CHOICE_FLAGS = ("allow_email", "allow_sms", "allow_voice")
TABS = {
    t.key: t
    for t in (
        Tab("who", "Who", ("first_name", "middle_name", "last_name", "date_of_birth", "sex")),
        Tab("contact", "Contact", ("email", "phone", "address")),
        Tab(
            "choices",
            "Choices",
            ("allow_patient_portal", "preferred_contact", *CHOICE_FLAGS),
        ),
    )
}
CONTACT_METHODS = [("", "No preference"), ("email", "E-mail"), ("phone", "Phone"), ("mail", "Mail")]


def _tab(request: web.Request) -> Tab:
    tab = TABS.get(request.query.get("tab", "who"))
    if tab is None:
        raise web.HTTPNotFound()
    return tab


def _values(patient: pb.Patient) -> dict[str, str | bool]:
    values: dict[str, str | bool] = {
        name: getattr(patient, name) for name in TABS["who"].fields + TABS["contact"].fields
    }
    values["allow_patient_portal"] = "yes" if patient.allow_patient_portal else "no"
    values["preferred_contact"] = patient.preferred_contact
    for flag in CHOICE_FLAGS:
        values[flag] = getattr(patient, flag)
    return values


@staff_page
async def edit_form(request: web.Request, caller: Caller) -> web.StreamResponse:
    tab = _tab(request)
    patient = await fetch_patient(request, caller)
    return _page(request, caller, patient, tab, _values(patient), {})


@staff_page
async def save(request: web.Request, caller: Caller) -> web.StreamResponse:
    tab = _tab(request)
    posted, bad = await form(request)
    update = pb.UpdatePatientRequest(patient_id=patient_id(request), update_mask=tab.fields)
    errors: dict[str, list[str]] = dict(bad)
    if tab.key == "choices":
        portal = posted.get("allow_patient_portal", "")
        if portal not in ("yes", "no"):
            errors["allow_patient_portal"] = ["Choose Yes or No."]
        update.allow_patient_portal = portal == "yes"
        update.preferred_contact = posted.get("preferred_contact", "")
        for flag in CHOICE_FLAGS:
            setattr(update, flag, checked(posted, flag))
    else:
        for name in tab.fields:
            setattr(update.fields, name, posted.get(name, ""))
    if not errors:
        try:
            await request.app[BACKENDS].identity.UpdatePatient(
                update, metadata=auth.metadata(request, caller)
            )
        except grpc.aio.AioRpcError as exc:
            found = invalid(exc)
            if found is None:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise web.HTTPNotFound() from None
                raise
            errors = found
    if errors:
        patient = await fetch_patient(request, caller)
        values: dict[str, str | bool] = {**_values(patient), **posted}
        for flag in CHOICE_FLAGS if tab.key == "choices" else ():
            values[flag] = checked(posted, flag)
        return _page(request, caller, patient, tab, values, errors, status=400)
    flash = f"{tab.key}-saved"
    if tab.key == "choices":
        flash = "portal-allowed" if update.allow_patient_portal else "portal-withdrawn"
    return redirect(request, f"/staff/patients/{update.patient_id}", flash=flash)


def _page(
    request: web.Request,
    caller: Caller,
    patient: pb.Patient,
    tab: Tab,
    values: dict[str, str | bool],
    errors: dict[str, list[str]],
    *,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        caller,
        "staff/demographics.html",
        {
            **patient_context(patient),
            "tab": tab,
            "tabs": list(TABS.values()),
            "values": values,
            "errors": errors,
            "sexes": SEXES,
            "contact_methods": CONTACT_METHODS,
        },
        status=status,
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/staff/patients/{patient_id}/demographics", edit_form)
    app.router.add_post("/staff/patients/{patient_id}/demographics", save)
