"""Forms' pure parts: answer checks, the canonical signed document, FHIR, PNG checks."""

from __future__ import annotations

import hashlib
import json

import pytest

from services.forms import answers, canonical, fhir, library, signatures
from services.forms.definitions import Condition, Definition, Item, Option, validate, walk

ITEMS = (
    Item("n", "Count", "integer", required=True),
    Item("d", "Dose", "decimal"),
    Item("when", "Date", "date"),
    Item("at", "Time", "dateTime"),
    Item("pick", "Pick", "choice", options=(Option("a"), Option("b"))),
    Item("yes", "Yes?", "boolean"),
    Item("why", "Why?", "text", required=True, enable_when=(Condition("yes", "=", True),)),
)


def test_answers_are_checked_per_type_and_normalised() -> None:
    cleaned, errors = answers.check(
        ITEMS,
        {
            "n": 3.0,
            "d": 1.5,
            "when": "2025-02-30",
            "at": "2025-02-01T10:00",
            "pick": "c",
            "yes": "true",
            "ghost": 1,
            "why": "",
        },
    )
    assert cleaned == {"n": 3, "d": 1.5}
    assert type(cleaned["n"]) is int
    assert sorted(errors) == ["at", "ghost", "pick", "when", "yes"]
    _, errors = answers.check(ITEMS, {"n": 2.5, "d": 2.0**60})
    assert sorted(errors) == ["d", "n"]


def test_required_items_count_only_when_enabled() -> None:
    assert answers.missing(ITEMS, {}) == ["n"]
    assert answers.missing(ITEMS, {"n": 1, "yes": True}) == ["why"]
    kept = answers.keep_enabled(ITEMS, {"n": 1, "yes": False, "why": "stale"})
    assert kept == {"n": 1, "yes": False}


def test_a_shown_agreement_must_be_answered_yes() -> None:
    guardian = Item("guardian", "Do you sign for someone else?", "boolean", required=True)
    items = (
        Item("agree", "I agree to treatment.", "boolean", agreement=True),
        guardian,
        Item(
            "authority",
            "I have the authority to consent for them.",
            "boolean",
            agreement=True,
            enable_when=(Condition("guardian", "=", True),),
        ),
    )
    assert answers.declined(items, {"agree": True, "guardian": False}) == []
    assert answers.declined(items, {"agree": False, "guardian": False}) == ["agree"]
    assert answers.declined(items, {"guardian": True}) == ["agree", "authority"]
    # Every shipped consent form names what the signer agrees to.
    for definition in library.LIBRARY.values():
        flagged = [i for i in walk(definition.items) if i.agreement]
        assert bool(flagged) == (definition.kind == "consent"), definition.title


def test_signed_document_is_rfc8785_canonical() -> None:
    document = canonical.signed_document("f", 2, {"b": 1, "a": "é", "c": 1.5}, "Zoë")
    assert (
        document
        == (
            '{"answers":{"a":"é","b":1,"c":1.5},"form_id":"f","form_version":2,"typed_name":"Zoë"}'
        ).encode()
    )
    assert canonical.document_sha256("f", 2, {"b": 1, "a": "é", "c": 1.5}, "Zoë") == (
        hashlib.sha256(document).hexdigest()
    )
    # Key order and spelling of equal numbers do not change the hash.
    assert canonical.document_sha256("f", 2, {"x": 1.0, "y": 2}, "A") == (
        canonical.document_sha256("f", 2, json.loads('{"y": 2, "x": 1}'), "A")
    )


@pytest.mark.parametrize("definition", list(library.LIBRARY.values()), ids=lambda d: d.title)
def test_library_forms_are_valid_and_survive_a_fhir_round_trip(definition: Definition) -> None:
    assert validate(definition) == (definition, {})
    resource = json.loads(json.dumps(fhir.export("id", 1, definition)))
    assert resource["resourceType"] == "Questionnaire"
    assert fhir.import_(resource, "visit") == definition


def test_fhir_import_reads_value_strings_and_refuses_other_resources() -> None:
    questionnaire = {
        "resourceType": "Questionnaire",
        "title": "Sleep",
        "item": [
            {
                "linkId": "q",
                "text": "Snore?",
                "type": "choice",
                "answerOption": [{"valueString": "yes"}, {"valueInteger": 0}],
            }
        ],
    }
    imported = fhir.import_(questionnaire, "visit")
    assert imported.items[0].options == (Option("yes"), Option("0"))
    with pytest.raises(fhir.FhirError):
        fhir.import_({"resourceType": "Patient"}, "visit")


def test_definitions_refuse_duplicate_link_ids_and_choices_without_options() -> None:
    _, errors = validate(
        Definition("T", "visit", (Item("a", "A", "string"), Item("a", "B", "choice")))
    )
    assert any("twice" in m for ms in errors.values() for m in ms)
    assert any("options" in m for ms in errors.values() for m in ms)


def test_signature_requests_need_a_name_and_a_real_png() -> None:
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
    assert signatures.check(signatures.Request(" Ada  Lovelace ", True, png)) == (
        "Ada Lovelace",
        {},
    )
    _, errors = signatures.check(signatures.Request("", True, png[:-12]))
    assert sorted(errors) == ["drawn_signature_png", "typed_name"]
    _, errors = signatures.check(signatures.Request("A\x00", True, b""))
    assert list(errors) == ["typed_name"]
