"""The one rule for text that reaches a service: NFC, no control characters, no lone surrogates.

Every edge applies it (the API's models, the staff and patient HTML forms) and every service
applies it again to each string of each gRPC request, so no caller can store a NUL byte or make
PostgreSQL fail on a lone surrogate. Free text (addresses, notes, reasons) may hold newlines
and tabs; single-line fields may not.

    clean("Zoe\u0308")        -> "Zoë" (NFC)
    clean("a\x00b")           -> TextError("Must not contain control characters.")
    clean("a\nb")             -> TextError(...)    clean("a\nb", multiline=True) -> "a\nb"
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls, DEL and C1 controls; tab and newline are allowed only in free text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_TAB_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")

CONTROL_MESSAGE = "Must not contain control characters."
SURROGATE_MESSAGE = "Must not contain unpaired surrogate characters."

# Fields that hold free text in any service's requests (may contain newline and tab).
# `string_value` is google.protobuf.Value's: form answers travel as a Struct, and a long-text
# answer may span lines. `questionnaire_json` is an imported FHIR document.
FREE_TEXT_FIELDS = frozenset(
    {
        "address",
        "body",
        "cancellation_reason",
        "description",
        "help_text",
        "instructions",
        "note",
        "notes",
        "questionnaire_json",
        "reason",
        "return_reason",
        "string_value",
        "text",
    }
)


class TextError(ValueError):
    """The text breaks the rule; the message is fit to show beside the field."""


def clean(value: str, *, multiline: bool = False) -> str:
    """`value` in NFC, or TextError when it holds control characters or lone surrogates."""
    if _SURROGATE.search(value):
        raise TextError(SURROGATE_MESSAGE)
    pattern = _CONTROL_EXCEPT_TAB_NEWLINE if multiline else _CONTROL
    if multiline:
        value = value.replace("\r\n", "\n")  # browsers send CRLF in textareas
    if pattern.search(value):
        raise TextError(CONTROL_MESSAGE)
    return unicodedata.normalize("NFC", value)


def scrub(value: str) -> str:
    """`value` with what the rule refuses removed, in NFC: for text that only describes the
    request (a User-Agent header), which should be kept as far as it is fine, never refused."""
    return unicodedata.normalize("NFC", _CONTROL.sub("", _SURROGATE.sub("", value)))


def problem(value: str, *, multiline: bool = False) -> str | None:
    """The message for text that breaks the rule, or None when it is fine."""
    try:
        clean(value, multiline=multiline)
    except TextError as exc:
        return str(exc)
    return None
