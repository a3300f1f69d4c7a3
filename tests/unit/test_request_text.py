"""The text rule over whole request messages: every string, at any depth, named by its path."""

from __future__ import annotations

import functools
import unicodedata
from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)
from hypothesis import given
from hypothesis import strategies as st

from portal.forms.v1 import forms_pb2
from portal.identity.v1 import identity_pb2 as pb
from services.runtime.request_text import check
from services.runtime.text import CONTROL_MESSAGE, clean

F = descriptor_pb2.FieldDescriptorProto


@functools.cache
def note_type() -> Any:
    """A message type with every shape of string field (a pool of its own, built once)."""
    file = descriptor_pb2.FileDescriptorProto(
        name="text_walk_test.proto", package="walk", syntax="proto3"
    )
    file.dependency.append("google/protobuf/timestamp.proto")
    note = file.message_type.add(name="Note")
    string, message, repeated = F.TYPE_STRING, F.TYPE_MESSAGE, F.LABEL_REPEATED
    for number, (name, kind, label, type_name) in enumerate(
        [
            ("title", string, F.LABEL_OPTIONAL, ""),
            ("text", string, F.LABEL_OPTIONAL, ""),  # free text: may hold newline and tab
            ("tags", string, repeated, ""),
            ("child", message, F.LABEL_OPTIONAL, ".walk.Note"),  # recursive
            ("children", message, repeated, ".walk.Note"),
            ("labels", message, repeated, ".walk.Note.LabelsEntry"),
            ("by_key", message, repeated, ".walk.Note.ByKeyEntry"),
            ("counts", message, repeated, ".walk.Note.CountsEntry"),
            ("at", message, F.LABEL_OPTIONAL, ".google.protobuf.Timestamp"),
        ],
        start=1,
    ):
        field = note.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name
    for entry, value_type, value_name in [
        ("LabelsEntry", string, ""),
        ("ByKeyEntry", message, ".walk.Note"),
        ("CountsEntry", F.TYPE_INT32, ""),
    ]:
        nested = note.nested_type.add(name=entry)
        nested.options.map_entry = True
        nested.field.add(name="key", number=1, type=string, label=F.LABEL_OPTIONAL)
        value = nested.field.add(name="value", number=2, type=value_type, label=F.LABEL_OPTIONAL)
        if value_name:
            value.type_name = value_name
    pool = descriptor_pool.DescriptorPool()
    timestamp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp)
    pool.Add(timestamp)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("walk.Note"))


DECOMPOSED, COMPOSED = "Zoe\u0308", "Zoë"
CONTROLS = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]}


def test_printable_ascii_is_left_alone() -> None:
    request = pb.RegisterPatientRequest(
        fields=pb.PatientFields(first_name="Ada", last_name="Lovelace", address="1 Main St")
    )
    before = request.SerializeToString()
    assert check(request) == {}
    assert request.SerializeToString() == before


def test_a_nul_in_a_nested_field_is_named_by_its_path() -> None:
    request = pb.RegisterPatientRequest(fields=pb.PatientFields(first_name="A\x00da"))
    assert check(request) == {"fields.first_name": [CONTROL_MESSAGE]}


def test_every_bad_field_is_named_and_good_ones_are_normalised() -> None:
    request = pb.UpdatePatientRequest(
        fields=pb.PatientFields(first_name=DECOMPOSED, last_name="L\x07", address="a\tb\r\nc"),
        update_mask=["first_name", "last\x1bname"],
    )
    assert check(request) == {
        "fields.last_name": [CONTROL_MESSAGE],
        "update_mask[1]": [CONTROL_MESSAGE],
    }
    assert request.fields.first_name == COMPOSED
    assert request.fields.address == "a\tb\nc"  # free text keeps tab and newline


def test_free_text_is_known_by_its_own_name_at_any_depth() -> None:
    note = note_type()(title="t", text="line one\nline two\ttab")
    note.child.text = "deep\nnote"
    note.child.title = "no\nnewline in a title"
    assert check(note) == {"child.title": [CONTROL_MESSAGE]}


def test_repeated_messages_maps_and_recursion() -> None:
    note = note_type()()
    note.children.add(title="fine")
    note.children.add(tags=["ok", DECOMPOSED, "bad\x00"])
    note.labels["plain"] = DECOMPOSED
    note.labels["bad"] = "\x7f"
    note.labels[DECOMPOSED] = "key is normalised"
    note.labels["k\x01"] = "bad key"  # the path quotes keys as JSON: no control in it
    note.by_key["x"].child.title = "\x9b"  # a C1 control
    note.by_key[DECOMPOSED].title = DECOMPOSED
    note.counts["c\x02"] = 3
    note.at.seconds = 5
    assert check(note) == {
        "children[1].tags[2]": [CONTROL_MESSAGE],
        'labels["bad"]': [CONTROL_MESSAGE],
        'labels["k\\u0001"]': [CONTROL_MESSAGE],
        'by_key["x"].child.title': [CONTROL_MESSAGE],
        'counts["c\\u0002"]': [CONTROL_MESSAGE],
    }
    assert note.children[1].tags[1] == COMPOSED
    assert note.labels["plain"] == COMPOSED
    assert note.labels[COMPOSED] == "key is normalised" and DECOMPOSED not in note.labels
    assert note.by_key[COMPOSED].title == COMPOSED and DECOMPOSED not in note.by_key


def test_message_types_without_strings_are_not_walked() -> None:
    note = note_type()()
    note.at.seconds = 1
    assert check(note) == {}
    assert not note.HasField("child")  # reading nested fields must not set them


# Any text Python can hold in a protobuf string (no lone surrogates: they cannot be encoded).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


@given(title=TEXT, text=TEXT, tags=st.lists(TEXT, max_size=3), label=TEXT)
def test_either_refused_by_field_or_all_nfc_and_control_free(
    title: str, text: str, tags: list[str], label: str
) -> None:
    note = note_type()(title=title, text=text, tags=tags)
    note.child.text = text
    note.labels["k"] = label
    errors = check(note)
    expected = {
        path
        for path, value, multiline in [
            ("title", title, False),
            ("text", text, True),
            ("child.text", text, True),
            ('labels["k"]', label, False),
            *((f"tags[{i}]", tag, False) for i, tag in enumerate(tags)),
        ]
        if _refused(value, multiline)
    }
    assert set(errors) == expected
    if not errors:
        assert note.title == clean(title) and list(note.tags) == [clean(t) for t in tags]
        assert note.text == note.child.text == clean(text, multiline=True)
        assert note.labels["k"] == clean(label)
        free_text = {"\t", "\n"}
        for value, allowed in [
            (note.text, free_text),
            *((v, set()) for v in [note.title, note.labels["k"], *note.tags]),
        ]:
            assert unicodedata.is_normalized("NFC", value)
            assert not (CONTROLS - allowed) & set(value)


def _refused(value: str, multiline: bool) -> bool:
    try:
        clean(value, multiline=multiline)
    except ValueError:
        return True
    return False


@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1f", "\x7f", "\x85", "\u009f"])
def test_each_control_is_refused_in_single_line_fields(bad: str) -> None:
    request = pb.SignInRequest(username="ada", password=f"secret{bad}password")
    assert check(request) == {"password": [CONTROL_MESSAGE]}


def test_json_may_hold_newlines_but_no_other_controls() -> None:
    answers = struct_pb2.Struct()
    answers.update({"history": "Appendix, 1999\nKnee, 2010"})
    saved = forms_pb2.SaveAnswersRequest(chart_form_id="x", answers=answers)
    assert check(saved) == {}
    document = forms_pb2.ImportQuestionnaireRequest(questionnaire_json='{\n  "a": 1\n}')
    assert check(document) == {}
    answers.update({"history": "bell\x07"})
    assert check(forms_pb2.SaveAnswersRequest(answers=answers)) == {
        'answers.fields["history"].string_value': [CONTROL_MESSAGE]
    }
