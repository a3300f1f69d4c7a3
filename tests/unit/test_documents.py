"""Upload sniffing, download names and the letter merge: pure functions, no services."""

from __future__ import annotations

import pytest

from services.forms import documents, letter_templates, sniff
from services.forms.letter_templates import Merge, MergeError
from services.gateway.records_view import document_response

PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + b"\x00" * 20
VALUES = Merge(patient_name="Ada {date}", date="May 2, 2025", clinic_name="Elm Clinic")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.4\n...\n%%EOF\n", "application/pdf"),
        (PNG, "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.4 <html> no end marker", None),
        (b"<html><body>hi</body></html>", None),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
        (b"\x89PNG\r\n\x1a\n" + b"tEXt" * 4, None),  # no IHDR: not a PNG
        (b"", None),
    ],
)
def test_the_type_comes_from_the_bytes(data: bytes, expected: str | None) -> None:
    assert sniff.content_type(data) == expected


def test_content_checks_say_what_is_wrong() -> None:
    errors: dict[str, list[str]] = {}
    assert documents.check_content(b"", errors) == ""
    assert errors == {"content": [documents.EMPTY]}
    errors = {}
    assert documents.check_content(b"%PDF-" + b" " * documents.MAX_BYTES, errors) == ""
    assert errors == {"content": [documents.TOO_LARGE]}
    errors = {}
    assert documents.check_content(b"<script>", errors) == ""
    assert errors == {"content": [sniff.REFUSED]}


def test_download_names_are_header_safe_and_take_the_sniffed_extension() -> None:
    assert documents.download_name("Lab results", "application/pdf") == "Lab results.pdf"
    assert documents.download_name('a"b\r\nc/../x.html', "image/png") == "abc..x.html.png"
    assert documents.download_name("Ωμέγα", "image/jpeg") == "document.jpg"


def test_merge_fills_known_fields_once_and_never_formats() -> None:
    text = "{date}: Dear {patient_name} of {clinic_name}, {{braces}} stay"
    assert letter_templates.merge(text, VALUES) == (
        "May 2, 2025: Dear Ada {date} of Elm Clinic, {braces} stay"
    )
    assert letter_templates.merge("{0.__class__} {patient_name!r}", VALUES) == (
        "{0.__class__} {patient_name!r}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hello {name}", "Unknown merge field {name}"),
        ("Hello {0.__class__.__mro__}", "Unknown merge field"),
        ("Hello {patient_name", "A lone brace"),
        ("Hello }", "A lone brace"),
    ],
)
def test_templates_with_unknown_fields_or_lone_braces_are_refused(text: str, message: str) -> None:
    with pytest.raises(MergeError, match=message.replace("{", r"\{").replace("}", r"\}")):
        letter_templates.check(text)


def test_template_validation_needs_name_and_body() -> None:
    draft, errors = letter_templates.validate("  Return  ", "", "Dear {patient_name}")
    assert errors == {}
    assert (draft.name, draft.title) == ("Return", "Return")
    _, errors = letter_templates.validate("", "", "")
    assert errors == {"name": ["Required."], "title": ["Required."], "body": ["Required."]}


@pytest.mark.parametrize("stored_as", ["text/html", "image/svg+xml", "text/xml", ""])
def test_active_content_is_never_served_inline(stored_as: str) -> None:
    """Even a type that slipped past the upload check is an opaque, sandboxed attachment."""
    reply = document_response(b"<svg onload='alert(1)'/>", stored_as, "x.svg")
    assert reply.headers["Content-Type"].startswith("application/octet-stream")
    assert reply.headers["Content-Disposition"].startswith("attachment;")
    assert reply.headers["Content-Security-Policy"] == "sandbox"


def test_pdf_and_images_are_inline_in_a_sandbox_with_a_safe_name() -> None:
    reply = document_response(b"%PDF-", "application/pdf", 'a"b\r\n.pdf')
    assert reply.headers["Content-Type"].startswith("application/pdf")
    assert reply.headers["Content-Disposition"] == 'inline; filename="ab.pdf"'
    assert reply.headers["Content-Security-Policy"] == "sandbox"
