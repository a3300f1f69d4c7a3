"""FHIR R4 Questionnaire JSON in and out of our definitions (pure: no database, no I/O).

Help text travels as FHIR does it: a child `display` item with the itemControl extension "help".
The form's kind travels in an extension of ours; an import without it takes the caller's kind.
So does a consent form's agreement question (an item extension, valueBoolean true).
"""

from __future__ import annotations

from typing import Any

from services.forms.definitions import (
    CHOICE_TYPES,
    ITEM_TYPES,
    Condition,
    Definition,
    Item,
    Json,
    Option,
    question_items,
)

KIND_EXTENSION = "urn:patient-portal:fhir:StructureDefinition:form-kind"
AGREEMENT_EXTENSION = "urn:patient-portal:fhir:StructureDefinition:agreement"
ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
ITEM_CONTROL_SYSTEM = "http://hl7.org/fhir/questionnaire-item-control"
_ANSWER_KEYS = {
    bool: "answerBoolean",
    int: "answerInteger",
    float: "answerDecimal",
    str: "answerString",
}


class FhirError(ValueError):
    """The resource is not a Questionnaire we can read; the message says why."""


def export(form_id: str, version: int, definition: Definition) -> dict[str, Json]:
    return {
        "resourceType": "Questionnaire",
        "id": form_id,
        "url": f"urn:uuid:{form_id}",
        "version": str(version),
        "title": definition.title,
        "status": "active",
        **({"description": definition.description} if definition.description else {}),
        "extension": [{"url": KIND_EXTENSION, "valueCode": definition.kind}],
        "item": [_export_item(item, question_items(definition.items)) for item in definition.items],
    }


def _export_item(item: Item, questions: dict[str, Item]) -> dict[str, Json]:
    out: dict[str, Json] = {"linkId": item.link_id, "type": item.type}
    if item.text:
        out["text"] = item.text
    if item.required:
        out["required"] = True
    if item.agreement:
        out["extension"] = [{"url": AGREEMENT_EXTENSION, "valueBoolean": True}]
    if item.options:
        out["answerOption"] = [
            {"valueCoding": {"code": o.value, **({"display": o.display} if o.display else {})}}
            for o in item.options
        ]
    if item.enable_when:
        out["enableWhen"] = [_export_condition(c, questions) for c in item.enable_when]
        if len(item.enable_when) > 1:
            out["enableBehavior"] = "any" if item.enable_when_any else "all"
    children = [_export_item(child, questions) for child in item.items]
    if item.help_text:
        children.append(
            {
                "linkId": f"{item.link_id}-help",
                "type": "display",
                "text": item.help_text,
                "extension": [
                    {
                        "url": ITEM_CONTROL,
                        "valueCodeableConcept": {
                            "coding": [{"system": ITEM_CONTROL_SYSTEM, "code": "help"}]
                        },
                    }
                ],
            }
        )
    if children:
        out["item"] = children
    return out


def _export_condition(condition: Condition, questions: dict[str, Item]) -> dict[str, Json]:
    out: dict[str, Json] = {"question": condition.question, "operator": condition.operator}
    target = questions.get(condition.question)
    if condition.operator == "exists":
        out["answerBoolean"] = bool(condition.answer)
    elif target is not None and target.type in CHOICE_TYPES:
        out["answerCoding"] = {"code": str(condition.answer)}  # choice answers are codes
    else:
        out[_ANSWER_KEYS.get(type(condition.answer), "answerString")] = condition.answer
    return out


def import_(resource: Json, default_kind: str) -> Definition:
    """A Definition from a Questionnaire resource (still to be validated), or FhirError."""
    if not isinstance(resource, dict) or resource.get("resourceType") != "Questionnaire":
        raise FhirError("Not a FHIR Questionnaire resource.")
    kind = default_kind
    for extension in _list(resource.get("extension")):
        if isinstance(extension, dict) and extension.get("url") == KIND_EXTENSION:
            kind = str(extension.get("valueCode", kind))
    title = resource.get("title") or resource.get("name") or ""
    return Definition(
        title=str(title),
        kind=kind,
        description=str(resource.get("description", "")),
        items=tuple(_import_item(i) for i in _list(resource.get("item"))),
    )


def _import_item(data: Json) -> Item:
    if not isinstance(data, dict):
        raise FhirError("Every item must be an object.")
    kind = data.get("type")
    if kind == "question":  # FHIR R4's abstract type: read it as free text
        kind = "string"
    if kind not in ITEM_TYPES:
        raise FhirError(f"Item {data.get('linkId')!r} has a type we do not support: {kind!r}.")
    help_text, children = "", []
    for child in _list(data.get("item")):
        if _is_help(child):
            help_text = str(child.get("text", ""))
        else:
            children.append(_import_item(child))
    return Item(
        link_id=str(data.get("linkId", "")),
        text=str(data.get("text", "")),
        type=str(kind),
        required=bool(data.get("required", False)),
        options=tuple(_import_option(o) for o in _list(data.get("answerOption"))),
        help_text=help_text,
        items=tuple(children),
        enable_when=tuple(_import_condition(c) for c in _list(data.get("enableWhen"))),
        enable_when_any=data.get("enableBehavior") == "any",
        agreement=any(
            isinstance(e, dict)
            and e.get("url") == AGREEMENT_EXTENSION
            and e.get("valueBoolean") is True
            for e in _list(data.get("extension"))
        ),
    )


def _is_help(child: Json) -> bool:
    if not isinstance(child, dict) or child.get("type") != "display":
        return False
    for extension in _list(child.get("extension")):
        if isinstance(extension, dict) and extension.get("url") == ITEM_CONTROL:
            codings = _list(extension.get("valueCodeableConcept", {}).get("coding"))
            if any(isinstance(c, dict) and c.get("code") == "help" for c in codings):
                return True
    return False


def _import_option(option: Json) -> Option:
    if not isinstance(option, dict):
        raise FhirError("Every answerOption must be an object.")
    if isinstance(option.get("valueCoding"), dict):
        coding = option["valueCoding"]
        return Option(str(coding.get("code", "")), str(coding.get("display", "")))
    for key in ("valueString", "valueInteger", "valueDate", "valueTime"):
        if key in option:
            return Option(str(option[key]))
    raise FhirError("An answerOption we cannot read (valueCoding, valueString or valueInteger).")


def _import_condition(condition: Json) -> Condition:
    if not isinstance(condition, dict):
        raise FhirError("Every enableWhen must be an object.")
    answer: Any = None
    for key, value in condition.items():
        if key == "answerCoding" and isinstance(value, dict):
            answer = str(value.get("code", ""))
        elif key.startswith("answer"):
            answer = value
    return Condition(str(condition.get("question", "")), str(condition.get("operator", "")), answer)


def _list(value: Json) -> list[Json]:
    return value if isinstance(value, list) else []
