"""Between protobuf messages, definitions and database rows."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from google.protobuf import json_format, struct_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from portal.forms.v1 import forms_pb2 as pb
from services.forms import access, catalog
from services.forms.definitions import Condition, Definition, Item, Json, Option

KINDS = {
    "consent": pb.FORM_KIND_CONSENT,
    "visit": pb.FORM_KIND_VISIT,
    "appointment": pb.FORM_KIND_APPOINTMENT,
    "refill": pb.FORM_KIND_REFILL,
}
KIND_NAMES = {v: k for k, v in KINDS.items()}
ITEM_TYPES = {
    "group": pb.ITEM_TYPE_GROUP,
    "display": pb.ITEM_TYPE_DISPLAY,
    "boolean": pb.ITEM_TYPE_BOOLEAN,
    "decimal": pb.ITEM_TYPE_DECIMAL,
    "integer": pb.ITEM_TYPE_INTEGER,
    "date": pb.ITEM_TYPE_DATE,
    "dateTime": pb.ITEM_TYPE_DATE_TIME,
    "time": pb.ITEM_TYPE_TIME,
    "string": pb.ITEM_TYPE_STRING,
    "text": pb.ITEM_TYPE_TEXT,
    "choice": pb.ITEM_TYPE_CHOICE,
    "open-choice": pb.ITEM_TYPE_OPEN_CHOICE,
    "attachment": pb.ITEM_TYPE_ATTACHMENT,
}
ITEM_TYPE_NAMES = {v: k for k, v in ITEM_TYPES.items()}
STATUSES = {
    "not-started": pb.CHART_FORM_STATUS_NOT_STARTED,
    "in-progress": pb.CHART_FORM_STATUS_IN_PROGRESS,
    "completed": pb.CHART_FORM_STATUS_COMPLETED,
    "signed": pb.CHART_FORM_STATUS_SIGNED,
    "accepted": pb.CHART_FORM_STATUS_ACCEPTED,
    "returned": pb.CHART_FORM_STATUS_RETURNED,
    "withdrawn": pb.CHART_FORM_STATUS_WITHDRAWN,
}


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def json_value(value: struct_pb2.Value) -> Json:
    return json_format.MessageToDict(value)


def struct(data: dict[str, Json]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(data)
    return out


def answers_in(message: struct_pb2.Struct) -> dict[str, Json]:
    loaded: dict[str, Json] = json_format.MessageToDict(message)
    return loaded


# ---- definitions


def definition_in(d: pb.FormDefinition) -> Definition:
    return Definition(
        title=d.title,
        kind=KIND_NAMES.get(d.kind, ""),
        description=d.description,
        items=tuple(item_in(i) for i in d.items),
    )


def item_in(i: pb.Item) -> Item:
    return Item(
        link_id=i.link_id,
        text=i.text,
        type=ITEM_TYPE_NAMES.get(i.type, ""),
        required=i.required,
        options=tuple(Option(o.value, o.display) for o in i.options),
        help_text=i.help_text,
        items=tuple(item_in(c) for c in i.items),
        enable_when=tuple(
            Condition(
                c.question, c.operator, json_value(c.answer) if c.HasField("answer") else None
            )
            for c in i.enable_when
        ),
        enable_when_any=i.enable_when_any,
        agreement=i.agreement,
    )


def definition_out(d: Definition) -> pb.FormDefinition:
    return pb.FormDefinition(
        title=d.title,
        kind=KINDS[d.kind],
        description=d.description,
        items=[item_out(i) for i in d.items],
    )


def item_out(i: Item) -> pb.Item:
    out = pb.Item(
        link_id=i.link_id,
        text=i.text,
        type=ITEM_TYPES[i.type],
        required=i.required,
        options=[pb.Option(value=o.value, display=o.display) for o in i.options],
        help_text=i.help_text,
        items=[item_out(c) for c in i.items],
        enable_when_any=i.enable_when_any,
        agreement=i.agreement,
    )
    for c in i.enable_when:
        condition = out.enable_when.add(question=c.question, operator=c.operator)
        json_format.ParseDict(c.answer, condition.answer)
    return out


# ---- rows


def form(row: asyncpg.Record) -> pb.Form:
    return pb.Form(
        id=str(row["id"]),
        version=row["version"],
        definition=definition_out(catalog.definition(row)),
        available_in_portal=row["position"] is not None,
        position=row["position"] or 0,
        published=row["published_at"] is not None,
        library=row["library_key"] is not None,
        updated_at=timestamp(row["updated_at"]),
    )


def form_summary(row: asyncpg.Record) -> pb.FormSummary:
    return pb.FormSummary(
        id=str(row["id"]),
        title=row["title"],
        kind=KINDS[row["kind"]],
        version=row["version"],
        available_in_portal=row["position"] is not None,
        position=row["position"] or 0,
    )


def chart_form_summary(row: asyncpg.Record) -> pb.ChartFormSummary:
    return pb.ChartFormSummary(
        id=str(row["id"]),
        patient_id=str(row["patient_id"]),
        form_id=str(row["form_id"]),
        form_version=row["form_version"],
        title=row["title"],
        kind=KINDS[row["kind"]],
        status=STATUSES[row["status"]],
        due=timestamp(row["due_at"]),
        done=row["done"],
        return_reason=row["return_reason"] if row["status"] == "returned" else "",
        assigned_at=timestamp(row["assigned_at"]),
        assigned_by=access.name_of(row["assigned_by"]),
        updated_at=timestamp(row["updated_at"]),
        submitted_at=timestamp(row["submitted_at"]),
        reviewed_by=access.name_of(row["reviewed_by"]),
        reviewed_at=timestamp(row["reviewed_at"]),
        appointment_id=str(row["appointment_id"] or ""),
    )


def signature(row: asyncpg.Record) -> pb.Signature:
    return pb.Signature(
        chart_form_id=str(row["chart_form_id"]),
        signer_kind=row["signer_kind"],
        signer_id=row["signer_id"],
        typed_name=row["typed_name"],
        signed_at=timestamp(row["signed_at"]),
        source_address=row["source_address"],
        user_agent=row["user_agent"],
        form_id=str(row["form_id"]),
        form_version=row["form_version"],
        disclosure_version=row["disclosure_version"],
        document_sha256=row["document_sha256"],
        drawn_signature_sha256=row["drawn_signature_sha256"],
        has_drawn_signature=row["drawn_signature"] is not None,
    )


def event(row: asyncpg.Record) -> pb.ChartFormEvent:
    return pb.ChartFormEvent(
        at=timestamp(row["at"]),
        action=row["action"],
        actor_kind=row["actor_kind"],
        actor=access.name_of(row["actor_id"]),
        source_address=row["source_address"],
        user_agent=row["user_agent"],
        detail=row["detail"],
    )
