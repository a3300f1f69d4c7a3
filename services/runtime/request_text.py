"""The text rule (services.runtime.text) applied to every string of a gRPC request message.

`check` walks a request by its descriptor: string fields, repeated strings, map keys and
values and nested messages, at any depth. Each string is NFC-normalised in place; strings that
break the rule are reported by their field path (`fields.first_name`, `items[2].note`,
`labels["k"]`), the syntax of google.rpc.BadRequest. Fields named in FREE_TEXT_FIELDS (by the
field's own name) may hold newline and tab.

Every RPC pays for this (it runs in @requires), so the field lists are worked out once per
message type, message types holding no strings are skipped, and printable ASCII, which is
already NFC and free of controls, is accepted without a regular expression.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from services.runtime.errors import FieldErrors
from services.runtime.text import FREE_TEXT_FIELDS, TextError, clean

_STRING = FieldDescriptor.TYPE_STRING
FREE_JSON = frozenset({"google.protobuf.Value"})


@dataclass(frozen=True)
class _Field:
    """A field that holds strings: a string, a message holding strings, or a map."""

    name: str
    kind: Literal["string", "message", "map"]
    repeated: bool
    multiline: bool
    message: Descriptor | None = None  # "message", or "map" with message values
    string_keys: bool = False  # "map" only
    string_values: bool = False  # "map" only


def check(message: Message) -> FieldErrors:
    """NFC-normalise every string of `message` in place; the rule's violations by field path."""
    errors: FieldErrors = {}
    _walk(message, _fields(message.DESCRIPTOR), "", errors)
    return errors


def _walk(message: Message, fields: tuple[_Field, ...], prefix: str, errors: FieldErrors) -> None:
    for field in fields:
        path = prefix + field.name
        if field.kind == "map":
            _walk_map(getattr(message, field.name), field, path, errors)
        elif field.message is not None:
            nested = _fields(field.message)
            if field.repeated:
                for i, item in enumerate(getattr(message, field.name)):
                    _walk(item, nested, f"{path}[{i}].", errors)
            elif message.HasField(field.name):
                _walk(getattr(message, field.name), nested, path + ".", errors)
        elif field.repeated:
            items = getattr(message, field.name)
            for i, value in enumerate(items):
                fixed = _clean(value, field.multiline, f"{path}[{i}]", errors)
                if fixed is not value:
                    items[i] = fixed
        else:
            value = getattr(message, field.name)
            fixed = _clean(value, field.multiline, path, errors)
            if fixed is not value:
                setattr(message, field.name, fixed)


def _walk_map(entries: Any, field: _Field, path: str, errors: FieldErrors) -> None:
    for key in list(entries):
        where = f"{path}[{json.dumps(key, ensure_ascii=False)}]"
        if field.string_keys:
            fixed_key = _clean(key, False, where, errors)
            if fixed_key is not key:  # the key changes with NFC: move the entry
                if field.message is None:
                    entries[fixed_key] = entries[key]
                else:  # message values cannot be assigned, only copied
                    entries[fixed_key].CopyFrom(entries[key])
                del entries[key]
                key = fixed_key
        if field.message is not None:
            _walk(entries[key], _fields(field.message), where + ".", errors)
        elif field.string_values:
            value = entries[key]
            fixed = _clean(value, field.multiline, where, errors)
            if fixed is not value:
                entries[key] = fixed


def _clean(value: str, multiline: bool, path: str, errors: FieldErrors) -> str:
    if value.isascii() and value.isprintable():
        return value  # the common case: nothing to normalise, nothing to refuse
    try:
        fixed = clean(value, multiline=multiline)
    except TextError as exc:
        errors.setdefault(path, []).append(str(exc))
        return value
    return value if fixed == value else fixed


@functools.cache
def _fields(descriptor: Descriptor) -> tuple[_Field, ...]:
    """The fields of a message type that hold strings, directly or deeper down."""
    return tuple(f for f in map(_field, descriptor.fields) if f is not None)


def _field(d: FieldDescriptor) -> _Field | None:
    repeated = d.is_repeated
    # JSON (a `*_json` document, a google.protobuf.Value such as a form's answers) may hold
    # newlines; the receiving service applies the rule that fits (forms: per item type).
    owner = d.containing_type.full_name if d.containing_type else ""
    multiline = d.name in FREE_TEXT_FIELDS or owner in FREE_JSON or d.name.endswith("_json")
    if d.type == _STRING:
        return _Field(d.name, "string", repeated, multiline)
    if d.message_type is None:
        return None
    if d.message_type.GetOptions().map_entry:
        key, value = d.message_type.fields_by_name["key"], d.message_type.fields_by_name["value"]
        string_keys, string_values = key.type == _STRING, value.type == _STRING
        nested = value.message_type
        if nested is not None and not _holds_strings(nested, frozenset()):
            nested = None
        if not (string_keys or string_values or nested):
            return None
        return _Field(d.name, "map", True, multiline, nested, string_keys, string_values)
    if not _holds_strings(d.message_type, frozenset()):
        return None  # e.g. google.protobuf.Timestamp
    return _Field(d.name, "message", repeated, multiline, d.message_type)


def _holds_strings(descriptor: Descriptor, seen: frozenset[str]) -> bool:
    if descriptor.full_name in seen:
        return False  # a recursive type: its strings are found where it was first met
    seen = seen | {descriptor.full_name}
    return any(
        d.type == _STRING or (d.message_type is not None and _holds_strings(d.message_type, seen))
        for d in descriptor.fields
    )
