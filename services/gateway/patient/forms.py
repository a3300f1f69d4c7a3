"""The portal's Forms: the forms in the patient's own chart, answering, submitting, eSigning.

Forms takes the patient from the principal, so a chart form of anyone else is NOT_FOUND there
and a 404 page here, whatever id the URL carries. One HTML form per page: "Save and finish
later", "Submit" (visit forms) or "Sign" (consent forms) are its buttons; form-autosave.js posts
the same fields to .../autosave in the background, and signature-pad.js draws the optional
signature into a hidden field. A page shown again after a problem keeps what was posted: the
answers, the typed name, and a drawing that could be read (signature-pad.js draws it again).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import aiohttp_jinja2
import grpc
from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb
from services.gateway import auth, form_view
from services.gateway.api.forms_models import SIGNATURE_IMAGE_CHARS
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.patient import present
from services.gateway.patient.session import my_profile, page_url, realm_of, signed_in
from services.gateway.patient.views import page_context
from services.gateway.staff.common import format_when, when
from services.runtime.errors import FieldErrors, field_errors, precondition_kind, precondition_text

PNG_DATA_URL = "data:image/png;base64,"
SIGN_AGREE = "agree_to_electronic_signature"
DRAWN = "drawn_signature"  # the hidden field signature-pad.js fills with a PNG data URL
DRAWN_UNREADABLE = "The drawn signature could not be read; draw it again."
# One-time messages after a redirect (?done=<key>): fixed texts only, never request data.
DONE = {
    "saved": "Your answers are saved. You can finish the form later.",
    "submitted": "Thank you. The form is submitted; the clinic will review it.",
    "signed": "Thank you. The form is signed.",
}
ALREADY_SIGNED = "This form is signed already. A signed form cannot be signed again or changed."


def chart_form_id(request: web.Request) -> str:
    return request.match_info["chart_form_id"]  # forms answers NOT_FOUND for anything else


def forms_url(realm: str, chart_form_id: str = "") -> str:
    return page_url(realm, "forms") + (f"/{chart_form_id}" if chart_form_id else "")


async def _page(
    request: web.Request, who: auth.Caller, template: str, context: dict[str, Any], status: int
) -> web.Response:
    zone = request.app[SETTINGS].clinic_timezone
    patient = present.profile(await my_profile(request, who))
    full = page_context(request, who, patient, "forms", **form_view.labels(zone), **context)
    full["format_time"] = lambda ts: format_when(when(ts), zone)
    done = DONE.get(request.query.get("done", ""))
    if done:
        full["messages"] = [*full["messages"], {"level": "success", "text": done}]
    return aiohttp_jinja2.render_template(template, request, full, status=status)


# --- The list ---------------------------------------------------------------------------------


async def forms_list(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    try:
        reply = await request.app[BACKENDS].forms.ListChartForms(
            pb.ListChartFormsRequest(), metadata=auth.metadata(request, who)
        )
        items = list(reply.items)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        items = []  # forms has not opened the chart yet
    todo = [i for i in items if not i.done]
    done = [i for i in items if i.done]
    return await _page(request, who, "patient/forms.html", {"todo": todo, "done": done}, 200)


# --- One form -----------------------------------------------------------------------------------


async def _chart_form(request: web.Request, who: auth.Caller) -> pb.ChartForm:
    chart_form: pb.ChartForm = await request.app[BACKENDS].forms.GetChartForm(
        pb.GetChartFormRequest(chart_form_id=chart_form_id(request)),
        metadata=auth.metadata(request, who),
    )  # NOT_FOUND (another's, or no such form) becomes the 404 page
    return chart_form


async def _form_page(
    request: web.Request,
    who: auth.Caller,
    chart_form: pb.ChartForm,
    *,
    values: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> web.Response:
    zone = request.app[SETTINGS].clinic_timezone
    summary = chart_form.summary
    answers = form_view.answers_of(chart_form.answers)
    editable = summary.status in form_view.EDITABLE and not chart_form.HasField("signature")
    forms = request.app[BACKENDS].forms
    disclosure = None
    if editable and summary.kind == pb.FORM_KIND_CONSENT:
        disclosure = await forms.GetSignatureDisclosure(
            pb.GetSignatureDisclosureRequest(), metadata=auth.metadata(request, who)
        )
    verification = None
    if chart_form.HasField("signature"):
        verification = await forms.VerifySignature(
            pb.VerifySignatureRequest(chart_form_id=summary.id),
            metadata=auth.metadata(request, who),
        )
    shown = form_view.control_values(chart_form.form.definition.items, answers, zone)
    context = {
        "cf": chart_form,
        "summary": summary,
        "answers": answers,
        "values": {**shown, **(values or {})},
        "errors": errors or {},
        "summary_prefixes": form_view.summary_prefixes(chart_form.form.definition.items),
        "editable": editable,
        "consent": summary.kind == pb.FORM_KIND_CONSENT,
        "disclosure": disclosure,
        "signature": chart_form.signature if chart_form.HasField("signature") else None,
        "verification": verification,
        "form_url": forms_url(realm_of(request), summary.id),
        "has_files": any(
            i.type == pb.ITEM_TYPE_ATTACHMENT
            for i in form_view.walk(chart_form.form.definition.items)
        ),
    }
    return await _page(request, who, "patient/form.html", context, status)


async def form_page(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return await _form_page(request, who, await _chart_form(request, who))


async def _save(
    request: web.Request,
    who: auth.Caller,
    chart_form: pb.ChartForm,
    read: form_view.ReadAnswers,
) -> pb.ChartForm:
    """Save the posted answers; raises the service's error (INVALID_ARGUMENT names link_ids)."""
    saved: pb.ChartForm = await request.app[BACKENDS].forms.SaveAnswers(
        pb.SaveAnswersRequest(
            chart_form_id=chart_form.summary.id, answers=form_view.to_struct(read.answers)
        ),
        metadata=auth.metadata(request, who),
    )
    return saved


def _read(request: web.Request, chart_form: pb.ChartForm, texts: dict[str, str], files: Any) -> Any:
    return form_view.read_answers(
        chart_form.form.definition.items,
        texts,
        files,
        form_view.answers_of(chart_form.answers),
        request.app[SETTINGS].clinic_timezone,
    )


async def post_form(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    realm = realm_of(request)
    chart_form = await _chart_form(request, who)
    texts, files = await form_view.read_post(request)
    action = texts.get("action", "save")
    read = _read(request, chart_form, texts, files)
    png = drawn_png(texts.get(DRAWN, "")) if action == "sign" else b""
    values = {**read.values, **{k: texts.get(k, "") for k in ("typed_name", SIGN_AGREE)}}
    if png:
        values[DRAWN] = texts[DRAWN]  # a readable drawing is shown again with any problem
    if read.errors:
        return await _form_page(
            request, who, chart_form, values=values, errors=read.errors, status=400
        )
    forms = request.app[BACKENDS].forms
    metadata = auth.metadata(request, who)
    try:
        chart_form = await _save(request, who, chart_form, read)
        if action == "submit":
            await forms.SubmitChartForm(
                pb.SubmitChartFormRequest(chart_form_id=chart_form.summary.id), metadata=metadata
            )
        elif action == "sign":
            return await _sign(request, who, chart_form, texts, values, png)
    except grpc.aio.AioRpcError as exc:
        return await _refused(request, who, exc, values)
    if action == "submit":
        return _see_other(forms_url(realm, chart_form.summary.id) + "?done=submitted")
    return _see_other(forms_url(realm) + "?done=saved")


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


async def _refused(
    request: web.Request, who: auth.Caller, exc: grpc.aio.AioRpcError, values: dict[str, str]
) -> web.Response:
    """The form again, saying what the service refused (fields, or why it cannot change)."""
    fresh = await _chart_form(request, who)
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        errors = form_view.rekey(field_errors(exc)) or {"_form": [exc.details() or ""]}
        if "drawn_signature_png" in errors:  # forms refused the drawing: not shown again
            values = {k: v for k, v in values.items() if k != DRAWN}
        if any(m == "Required." for ms in errors.values() for m in ms):
            errors = {k: ["Answer this question." if m == "Required." else m for m in ms]
                      for k, ms in errors.items()}  # fmt: skip
        return await _form_page(request, who, fresh, values=values, errors=errors, status=400)
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        named = form_view.rekey(field_errors(exc))  # e.g. CONSENT_DECLINED: the agreement item
        if named:
            return await _form_page(request, who, fresh, values=values, errors=named, status=409)
        kind = precondition_kind(exc)
        text = ALREADY_SIGNED if kind == "ALREADY_SIGNED" else precondition_text(exc)
        return await _form_page(request, who, fresh, errors={"_form": [text]}, status=409)
    raise exc


async def _sign(
    request: web.Request,
    who: auth.Caller,
    chart_form: pb.ChartForm,
    texts: dict[str, str],
    values: dict[str, str],
    png: bytes | None,
) -> web.Response:
    if png is None:
        errors: FieldErrors = {"_form": [DRAWN_UNREADABLE]}
        return await _form_page(request, who, chart_form, values=values, errors=errors, status=400)
    version = texts.get("disclosure_version", "")
    await request.app[BACKENDS].forms.SignChartForm(
        pb.SignChartFormRequest(
            chart_form_id=chart_form.summary.id,
            typed_name=texts.get("typed_name", "").strip(),
            agree_to_electronic_signature=bool(texts.get(SIGN_AGREE)),
            drawn_signature_png=png,
            disclosure_version=int(version) if version.isdigit() and len(version) < 9 else 0,
            user_agent=request.headers.get("User-Agent", "")[:512],
        ),
        metadata=auth.metadata(request, who),
    )
    url = forms_url(realm_of(request), chart_form.summary.id) + "?done=signed"
    return _see_other(url)


def drawn_png(data_url: str) -> bytes | None:
    """The PNG of a drawn signature's data URL: b"" when nothing was drawn, None when it cannot
    be read (not a base64 PNG data URL, or longer than the API takes). Forms checks the image."""
    if not data_url:
        return b""
    encoded = data_url.removeprefix(PNG_DATA_URL)
    if encoded == data_url or len(encoded) > SIGNATURE_IMAGE_CHARS:
        return None
    try:
        return base64.b64decode(encoded, validate=True) or None
    except (ValueError, binascii.Error):
        return None


async def autosave(request: web.Request) -> web.StreamResponse:
    """The background save of form-autosave.js: 204, or 400/409 with a short text."""
    who = await auth.patient_caller(request, realm_of(request))
    if who is None or who.must_change_password:
        return web.Response(status=401, text="Please sign in again.")
    chart_form = await _chart_form(request, who)
    texts, files = await form_view.read_post(request)
    read = _read(request, chart_form, texts, files)
    if read.errors:
        return web.Response(status=400, text="Some answers need checking.")
    try:
        await _save(request, who, chart_form, read)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return web.Response(status=400, text="Some answers need checking.")
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return web.Response(status=409, text="This form can no longer be changed.")
        raise
    return web.Response(status=204)


async def certificate(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return await form_view.certificate_response(request, who, chart_form_id(request))


def setup(app: web.Application, base: str) -> None:
    app.router.add_get(base + "/forms", forms_list, name="portal-forms")
    app.router.add_get(base + "/forms/{chart_form_id}", form_page)
    app.router.add_post(base + "/forms/{chart_form_id}", post_form)
    app.router.add_post(base + "/forms/{chart_form_id}/autosave", autosave)
    app.router.add_get(base + "/forms/{chart_form_id}/certificate.pdf", certificate)
