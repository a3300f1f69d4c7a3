"""The forms API: the library and portal catalog, chart forms and review (staff), and the
patient's own forms: answer, submit, eSign, download the signature certificate.

Patient routes take no patient id: forms reads the patient from the signed principal, so a
chart form of anyone else is NOT_FOUND there and 404 here, whatever id the URL carries. The
signer and source address come from the session too; only the User-Agent is the request's.
"""

from __future__ import annotations

import base64
from typing import Any

import grpc
from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb
from portal.scheduling.v1 import scheduling_pb2
from services.gateway import auth
from services.gateway.api import forms_convert as convert
from services.gateway.api.forms_models import (
    AnswersIn,
    AssignIn,
    ChartForm,
    ChartFormList,
    Form,
    FormDefinitionIn,
    FormList,
    PortalForm,
    PortalFormsIn,
    ReviewIn,
    SignatureIn,
    SignatureReceipt,
    Verification,
    VisitForms,
    VisitFormsIn,
)
from services.gateway.api.json_io import invalid, timestamp
from services.gateway.api.operation import (
    Answer,
    Call,
    Header,
    Operation,
    Reply,
    not_found,
    path_id,
    patient_id,
)
from services.gateway.api.patients import of_known_patient
from services.gateway.backends import PDF_DEADLINE, Backends
from services.gateway.context import BACKENDS
from services.gateway.security import Problem
from services.gateway.staff_roles import FORM_CATALOG
from services.runtime.errors import FieldErrors, field_errors

PDF = "application/pdf"
MAX_USER_AGENT = 1000
# Fields of the signature request; the service's other errors name unanswered items.
SIGN_FIELDS = frozenset({"typed_name", "agree_to_electronic_signature", "drawn_signature_png"})


def _backends(call: Call[Any, Any]) -> Backends:
    return call.request.app[BACKENDS]


def _meta(call: Call[Any, Any]) -> tuple[tuple[str, str], ...]:
    return auth.metadata(call.request, call.caller)


def _chart_form_id(call: Call[Any, Any]) -> str:
    return path_id(call, "chart_form_id", "form")


def _unprocessable(exc: grpc.aio.AioRpcError) -> Problem:
    return Problem(
        422,
        "Form not complete",
        exc.details() or "Some required answers are missing or not valid.",
        errors=field_errors(exc),
        code="ANSWERS_INCOMPLETE",
    )


# --- Staff: library, portal catalog, visit forms --------------------------------------------


async def list_forms(call: Call[None, None]) -> Reply:
    reply = await _backends(call).forms.ListForms(pb.ListFormsRequest(), metadata=_meta(call))
    return Reply(FormList(items=[convert.form_summary(f) for f in reply.items]))


async def set_portal_forms(call: Call[PortalFormsIn, None]) -> Reply:
    reply = await _backends(call).forms.SetPortalForms(
        pb.SetPortalFormsRequest(form_ids=call.body.form_ids), metadata=_meta(call)
    )
    return Reply(FormList(items=[convert.form_summary(f) for f in reply.items]))


async def create_form(call: Call[FormDefinitionIn, None]) -> Reply:
    found = await _backends(call).forms.CreateForm(
        pb.CreateFormRequest(definition=convert.definition_in(call.body)), metadata=_meta(call)
    )
    return Reply(convert.form(found), status=201, headers={"Location": f"/api/v1/forms/{found.id}"})


async def update_form(call: Call[FormDefinitionIn, None]) -> Reply:
    found = await _backends(call).forms.UpdateForm(
        pb.UpdateFormRequest(
            form_id=path_id(call, "form_id", "form"),
            definition=convert.definition_in(call.body),
        ),
        metadata=_meta(call),
    )
    return Reply(convert.form(found))


async def set_visit_forms(call: Call[VisitFormsIn, None]) -> Reply:
    type_id = path_id(call, "appointment_type_id", "appointment type")
    backends, metadata = _backends(call), _meta(call)
    # Appointment types are scheduling's; forms keeps only their ids.
    types = await backends.scheduling.ListAppointmentTypes(
        scheduling_pb2.ListAppointmentTypesRequest(), metadata=metadata
    )
    if type_id not in {t.id for t in types.items}:
        raise not_found("appointment type")
    reply = await backends.forms.SetVisitForms(
        pb.SetVisitFormsRequest(appointment_type_id=type_id, form_ids=call.body.form_ids),
        metadata=metadata,
    )
    return Reply(
        VisitForms(
            appointment_type_id=reply.appointment_type_id,
            forms=[convert.form_summary(f) for f in reply.forms],
        )
    )


# --- Staff: a patient's chart forms, review, verification ------------------------------------


async def patient_forms(call: Call[None, None]) -> Reply:
    target = patient_id(call)
    # 404 for no such patient (identity); forms may not have opened the chart yet.
    items = await of_known_patient(call, target, _chart_forms(_backends(call), _meta(call), target))
    return Reply(ChartFormList(items=[convert.chart_form_summary(i) for i in items]))


async def _chart_forms(
    backends: Backends, metadata: tuple[tuple[str, str], ...], target: str = ""
) -> list[pb.ChartFormSummary]:
    try:
        reply = await backends.forms.ListChartForms(
            pb.ListChartFormsRequest(patient_id=target), metadata=metadata
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return []  # forms opens a chart when it hears of the registration
    return list(reply.items)


async def assign(call: Call[AssignIn, None]) -> Reply:
    target = patient_id(call)
    found = await _backends(call).forms.AssignChartForm(
        pb.AssignChartFormRequest(patient_id=target, form_id=call.body.form_id),
        metadata=_meta(call),
    )
    return Reply(
        convert.chart_form(found),
        status=201,
        headers={"Location": f"/api/v1/chart-forms/{found.summary.id}"},
    )


async def chart_form(call: Call[None, None]) -> Reply:
    found = await _backends(call).forms.GetChartForm(
        pb.GetChartFormRequest(chart_form_id=_chart_form_id(call)), metadata=_meta(call)
    )
    return Reply(convert.chart_form(found))


async def review(call: Call[ReviewIn, None]) -> Reply:
    decision = call.body.root
    found = await _backends(call).forms.ReviewChartForm(
        pb.ReviewChartFormRequest(
            chart_form_id=_chart_form_id(call),
            decision=(
                pb.REVIEW_DECISION_ACCEPT
                if decision.decision == "accept"
                else pb.REVIEW_DECISION_RETURN
            ),
            note=decision.note,
        ),
        metadata=_meta(call),
    )
    return Reply(convert.chart_form(found))


async def verification(call: Call[None, None]) -> Reply:
    found = await _backends(call).forms.VerifySignature(
        pb.VerifySignatureRequest(chart_form_id=_chart_form_id(call)), metadata=_meta(call)
    )
    return Reply(
        Verification(
            valid=found.valid,
            document_sha256=found.document_sha256,
            recomputed_sha256=found.recomputed_sha256,
            drawn_signature_valid=found.drawn_signature_valid,
        )
    )


# --- Patient: their own forms ----------------------------------------------------------------


async def my_forms(call: Call[None, None]) -> Reply:
    items = await _chart_forms(_backends(call), _meta(call))
    return Reply(ChartFormList(items=[convert.chart_form_summary(i) for i in items]))


async def my_form(call: Call[None, None]) -> Reply:
    found = await _backends(call).forms.GetChartForm(
        pb.GetChartFormRequest(chart_form_id=_chart_form_id(call)), metadata=_meta(call)
    )
    return Reply(convert.portal_form(found))


async def save_answers(call: Call[AnswersIn, None]) -> Reply:
    request = pb.SaveAnswersRequest(chart_form_id=_chart_form_id(call))
    request.answers.update(call.body.model_dump()["answers"])
    try:
        found = await _backends(call).forms.SaveAnswers(request, metadata=_meta(call))
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        # The service names items; the request's field is answers.<link_id>.
        errors: FieldErrors = {f"answers.{k}": v for k, v in field_errors(exc).items()}
        raise invalid(errors, exc.details() or "Some answers are not valid.") from None
    return Reply(convert.portal_form(found))


async def submit(call: Call[None, None]) -> Reply:
    try:
        found = await _backends(call).forms.SubmitChartForm(
            pb.SubmitChartFormRequest(chart_form_id=_chart_form_id(call)), metadata=_meta(call)
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        raise _unprocessable(exc) from None
    return Reply(convert.portal_form(found))


async def sign(call: Call[SignatureIn, None]) -> Reply:
    body = call.body
    try:
        found = await _backends(call).forms.SignChartForm(
            pb.SignChartFormRequest(
                chart_form_id=_chart_form_id(call),
                typed_name=body.typed_name,
                agree_to_electronic_signature=body.agree_to_electronic_signature,
                drawn_signature_png=base64.b64decode(body.drawn_signature_png),
                user_agent=call.request.headers.get("User-Agent", "")[:MAX_USER_AGENT],
            ),
            metadata=_meta(call),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT or set(field_errors(exc)) & SIGN_FIELDS:
            raise  # the request's own fields (with any unanswered items beside them): 400
        raise _unprocessable(exc) from None
    receipt = SignatureReceipt(
        chart_form_id=found.chart_form_id,
        signed_at=timestamp(found.signed_at),
        document_sha256=found.document_sha256,
        typed_name=found.typed_name,
        has_drawn_signature=found.has_drawn_signature,
    )
    return Reply(receipt, status=201)


async def certificate(call: Call[None, None]) -> Reply:
    found = await _backends(call).forms.GetSignatureCertificate(
        pb.GetSignatureCertificateRequest(chart_form_id=_chart_form_id(call)),
        metadata=_meta(call),
        timeout=PDF_DEADLINE,
    )
    return Reply(
        raw=web.Response(
            body=found.pdf,
            content_type=PDF,
            headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
        )
    )


# --- Declarations ------------------------------------------------------------------------------

CHART_FORM = "/api/v1/chart-forms/{chart_form_id}"
MINE = "/api/v1/portal/forms"
LOCATION = {"Location": Header("The new resource's URL.", True, "uri-reference")}
STATUS_409 = "409 `code`: "


def _staff_operations() -> list[Operation]:
    return [
        Operation(
            "GET",
            "/api/v1/forms",
            list_forms,
            operation_id="listForms",
            summary="Every form of the library, with its portal availability and position",
            tag="forms",
            security="staff",
            answers=(Answer(200, "The forms.", FormList),),
        ),
        Operation(
            "PUT",
            "/api/v1/portal-forms",
            set_portal_forms,
            operation_id="setPortalForms",
            summary="Make exactly these forms available in the portal, in this order",
            description="The Update button of Patient Portal Forms. A consent form made "
            "available here reaches the charts of patients who already have portal access. "
            "An id that names no form is 400 on `form_ids`.",
            tag="forms",
            security="staff",
            body=PortalFormsIn,
            answers=(Answer(200, "Every form, the portal's first in portal order.", FormList),),
            roles=FORM_CATALOG,
        ),
        Operation(
            "POST",
            "/api/v1/forms",
            create_form,
            operation_id="createForm",
            summary="Add a form to the library",
            description="Beyond the schema, 400 names a link_id used twice, options on an "
            "item that is no choice (or none on a choice), repeated option values and a "
            "required display item (`items[n]`).",
            tag="forms",
            security="staff",
            body=FormDefinitionIn,
            answers=(Answer(201, "Created.", Form, headers=LOCATION),),
            roles=FORM_CATALOG,
        ),
        Operation(
            "PUT",
            "/api/v1/forms/{form_id}",
            update_form,
            operation_id="updateForm",
            summary="Replace a form's definition (a new version when the current one has answers)",
            description="Chart forms keep answering the version they were given. The kind "
            "cannot change (400 on `kind`); other checks as for createForm.",
            tag="forms",
            security="staff",
            body=FormDefinitionIn,
            answers=(Answer(200, "The form's current version.", Form),),
            roles=FORM_CATALOG,
        ),
        Operation(
            "PUT",
            "/api/v1/appointment-types/{appointment_type_id}/visit-forms",
            set_visit_forms,
            operation_id="setVisitForms",
            summary="The visit forms placed in the chart when this type of appointment is booked",
            description="Only visit and appointment forms (others are 400 on `form_ids`).",
            tag="forms",
            security="staff",
            body=VisitFormsIn,
            answers=(Answer(200, "The type's visit forms, in order.", VisitForms),),
            roles=FORM_CATALOG,
        ),
        Operation(
            "GET",
            "/api/v1/patients/{patient_id}/forms",
            patient_forms,
            operation_id="listPatientForms",
            summary="A patient's chart forms (withdrawn ones included)",
            description="404: no such patient.",
            tag="forms",
            security="staff",
            answers=(Answer(200, "The chart forms.", ChartFormList),),
        ),
        Operation(
            "POST",
            "/api/v1/patients/{patient_id}/forms",
            assign,
            operation_id="assignPatientForm",
            summary="Add a form to a patient's chart",
            description="An id that names no form is 400 on `form_id`.",
            tag="forms",
            security="staff",
            body=AssignIn,
            answers=(Answer(201, "Added.", ChartForm, headers=LOCATION),),
        ),
        Operation(
            "GET",
            CHART_FORM,
            chart_form,
            operation_id="getChartForm",
            summary="A chart form: its exact definition, answers, signature and history",
            tag="forms",
            security="staff",
            answers=(Answer(200, "The chart form.", ChartForm),),
        ),
        Operation(
            "POST",
            CHART_FORM + "/review",
            review,
            operation_id="reviewChartForm",
            summary="Accept a completed or signed form into the chart, or return it",
            description=STATUS_409 + "NOT_REVIEWABLE (not completed or signed), "
            "ALREADY_SIGNED (a signed form cannot be returned).",
            tag="forms",
            security="staff",
            body=ReviewIn,
            answers=(Answer(200, "Reviewed.", ChartForm),),
            problems=(409,),
        ),
        Operation(
            "GET",
            CHART_FORM + "/verification",
            verification,
            operation_id="verifyChartFormSignature",
            summary="Recompute the signed document's hash from the answers stored now",
            description=STATUS_409 + "NOT_SIGNED.",
            tag="forms",
            security="staff",
            answers=(Answer(200, "The verification.", Verification),),
            problems=(409,),
        ),
    ]


def _patient_operations() -> list[Operation]:
    return [
        Operation(
            "GET",
            MINE,
            my_forms,
            operation_id="listMyForms",
            summary="The forms in my chart, in the clinic's portal order, to do before done",
            tag="portal",
            security="patient",
            answers=(Answer(200, "My forms.", ChartFormList),),
        ),
        Operation(
            "GET",
            MINE + "/{chart_form_id}",
            my_form,
            operation_id="getMyForm",
            summary="One of my forms: its items and my answers",
            tag="portal",
            security="patient",
            answers=(Answer(200, "The form.", PortalForm),),
        ),
        Operation(
            "PUT",
            MINE + "/{chart_form_id}/answers",
            save_answers,
            operation_id="saveMyAnswers",
            summary="Save answers (save and finish later); the form is then in progress",
            description="Each answer is checked against its item's type (400 naming "
            "`answers.<link_id>`). " + STATUS_409 + "NOT_EDITABLE (submitted), "
            "ALREADY_SIGNED.",
            tag="portal",
            security="patient",
            body=AnswersIn,
            answers=(Answer(200, "Saved.", PortalForm),),
            problems=(409,),
        ),
        Operation(
            "POST",
            MINE + "/{chart_form_id}/submit",
            submit,
            operation_id="submitMyForm",
            summary="Finish a form: every required item must be answered",
            description="422: `errors` names each missing or invalid item by link_id. "
            + STATUS_409
            + "SIGNATURE_REQUIRED (a consent form is completed by signing), NOT_EDITABLE, "
            "ALREADY_SIGNED.",
            tag="portal",
            security="patient",
            answers=(Answer(200, "Completed.", PortalForm),),
            problems=(409, 422),
        ),
        Operation(
            "POST",
            MINE + "/{chart_form_id}/signature",
            sign,
            operation_id="signMyForm",
            summary="eSign (and so complete) a form",
            description="The signer and address come from the session, the user agent from "
            "the User-Agent header; the record is immutable. 400: the request's fields (a "
            "drawn signature that is not a whole PNG too), and any unanswered required items "
            "beside them, all at once. 422: `errors` names unanswered required items by "
            "link_id. "
            + STATUS_409
            + "ALREADY_SIGNED, NOT_EDITABLE, DISCLOSURE_CHANGED, CONSENT_DECLINED (an agreement "
            "question of the consent form is not answered Yes; `errors` names it by link_id).",
            tag="portal",
            security="patient",
            body=SignatureIn,
            answers=(Answer(201, "Signed.", SignatureReceipt),),
            problems=(409, 422),
        ),
        Operation(
            "GET",
            MINE + "/{chart_form_id}/certificate.pdf",
            certificate,
            operation_id="getMyFormCertificate",
            summary="The signature certificate: the form with its answers, then the audit trail",
            description=STATUS_409 + "NOT_SIGNED, FONTS_MISSING (a font the PDF embeds is not "
            "installed on the server).",
            tag="portal",
            security="patient",
            answers=(
                Answer(
                    200,
                    "The certificate (PDF).",
                    media_types=(PDF,),
                    headers={"Content-Disposition": Header("attachment; filename=...", True)},
                ),
            ),
            problems=(409,),
        ),
    ]


def operations() -> list[Operation]:
    return _staff_operations() + _patient_operations()
