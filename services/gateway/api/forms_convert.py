"""Forms' messages as the API's models, and definitions the other way."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2

from portal.forms.v1 import forms_pb2 as pb
from services.gateway.api.forms_models import (
    ChartForm,
    ChartFormEvent,
    ChartFormSummary,
    Condition,
    Form,
    FormDefinition,
    FormDefinitionIn,
    FormItem,
    FormSummary,
    Option,
    PortalForm,
    Signature,
)
from services.gateway.api.json_io import timestamp
from services.gateway.form_view import KIND_BY_NAME, KIND_NAME, TYPE_BY_NAME, TYPE_NAME

STATUS_NAME = {
    pb.CHART_FORM_STATUS_NOT_STARTED: "not-started",
    pb.CHART_FORM_STATUS_IN_PROGRESS: "in-progress",
    pb.CHART_FORM_STATUS_COMPLETED: "completed",
    pb.CHART_FORM_STATUS_SIGNED: "signed",
    pb.CHART_FORM_STATUS_ACCEPTED: "accepted",
    pb.CHART_FORM_STATUS_RETURNED: "returned",
    pb.CHART_FORM_STATUS_WITHDRAWN: "withdrawn",
}


def definition_in(body: FormDefinitionIn) -> pb.FormDefinition:
    return pb.FormDefinition(
        title=body.title,
        kind=KIND_BY_NAME[body.kind],
        description=body.description,
        items=[
            pb.Item(
                link_id=item.link_id,
                text=item.text,
                type=TYPE_BY_NAME[item.type],
                required=item.required,
                options=[pb.Option(value=o.value, display=o.display) for o in item.options],
                help_text=item.help_text,
                agreement=item.agreement,
            )
            for item in body.items
        ],
    )


def form_summary(found: pb.FormSummary) -> FormSummary:
    return FormSummary(
        id=found.id,
        title=found.title,
        kind=KIND_NAME[found.kind],  # type: ignore[arg-type]
        version=found.version,
        available_in_portal=found.available_in_portal,
        position=found.position,
    )


def _item(found: pb.Item) -> FormItem:
    return FormItem(
        link_id=found.link_id,
        text=found.text,
        type=TYPE_NAME[found.type],  # type: ignore[arg-type]
        required=found.required,
        options=[Option(value=o.value, display=o.display) for o in found.options],
        help_text=found.help_text,
        agreement=found.agreement,
        items=[_item(child) for child in found.items],
        enable_when=[
            Condition(
                question=c.question,
                operator=c.operator,  # type: ignore[arg-type]
                answer=_value(c.answer) if c.HasField("answer") else None,
            )
            for c in found.enable_when
        ],
        enable_when_any=found.enable_when_any,
    )


def _value(found: struct_pb2.Value) -> Any:
    return json_format.MessageToDict(found)  # a Value becomes its JSON value, not a dict


def definition(found: pb.FormDefinition) -> FormDefinition:
    return FormDefinition(
        title=found.title,
        kind=KIND_NAME[found.kind],  # type: ignore[arg-type]
        description=found.description,
        items=[_item(i) for i in found.items],
    )


def form(found: pb.Form) -> Form:
    return Form(
        id=found.id,
        version=found.version,
        available_in_portal=found.available_in_portal,
        position=found.position,
        published=found.published,
        definition=definition(found.definition),
    )


def _whole(value: Any) -> Any:
    # A Struct holds every number as a double: 3 comes back as 3.0.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def answers(found: pb.ChartForm) -> dict[str, Any]:
    stored: dict[str, Any] = json_format.MessageToDict(found.answers)
    return {link_id: _whole(value) for link_id, value in stored.items()}


def _summary_fields(found: pb.ChartFormSummary) -> dict[str, Any]:
    return {
        "id": found.id,
        "form_id": found.form_id,
        "version": found.form_version,
        "title": found.title,
        "kind": KIND_NAME[found.kind],
        "status": STATUS_NAME[found.status],
        "due": timestamp(found.due),
        "return_reason": found.return_reason,
    }


def chart_form_summary(found: pb.ChartFormSummary) -> ChartFormSummary:
    return ChartFormSummary(**_summary_fields(found), done=found.done)


def signature(found: pb.Signature) -> Signature:
    return Signature(
        signer_kind=found.signer_kind,
        signer_id=found.signer_id,
        typed_name=found.typed_name,
        signed_at=timestamp(found.signed_at),
        source_address=found.source_address,
        user_agent=found.user_agent,
        form_id=found.form_id,
        form_version=found.form_version,
        disclosure_version=found.disclosure_version,
        document_sha256=found.document_sha256,
        has_drawn_signature=found.has_drawn_signature,
        drawn_signature_sha256=found.drawn_signature_sha256,
    )


def chart_form(found: pb.ChartForm) -> ChartForm:
    """A chart form as staff see it."""
    summary = found.summary
    return ChartForm(
        **_summary_fields(summary),
        done=summary.done,
        patient_id=summary.patient_id,
        assigned_at=timestamp(summary.assigned_at),
        assigned_by=summary.assigned_by,
        submitted_at=timestamp(summary.submitted_at),
        reviewed_by=summary.reviewed_by,
        reviewed_at=timestamp(summary.reviewed_at),
        definition=definition(found.form.definition),
        answers=answers(found),
        signature=signature(found.signature) if found.HasField("signature") else None,
        events=[
            ChartFormEvent(
                at=timestamp(e.at),
                action=e.action,
                actor_kind=e.actor_kind,
                actor=e.actor,
                source_address=e.source_address,
                user_agent=e.user_agent,
                detail=e.detail,
            )
            for e in found.events
        ],
    )


def portal_form(found: pb.ChartForm) -> PortalForm:
    """A chart form as its patient sees it."""
    definition_ = found.form.definition
    return PortalForm(
        **_summary_fields(found.summary),
        description=definition_.description,
        items=[_item(i) for i in definition_.items],
        answers=answers(found),
        signed_at=timestamp(found.signature.signed_at) if found.HasField("signature") else None,
    )
