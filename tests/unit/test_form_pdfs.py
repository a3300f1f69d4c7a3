"""The forms service's PDFs (signature certificate, completed form, form letter): names and
answers in any script print as typed, with the embedded Unicode fonts of the letters."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.forms import certificate, letter_pdf
from services.forms.certificate import SignatureFacts, TrailEntry
from services.forms.definitions import Definition, Item, Option
from tests.unit.test_letters import pdf_tool

SIGNED = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
DEFINITION = Definition(
    title="Согласие на лечение",
    kind="consent",
    description="Read and sign: consentement éclairé.",
    items=(
        Item("name", "Full legal name", "string", required=True),
        Item("city", "Город", "string"),
        Item(
            "lang",
            "Preferred language",
            "choice",
            options=(Option("zh", "中文"), Option("el", "Ελληνικά")),
        ),
        Item("notes", "Notes", "text"),
    ),
)


def facts(typed_name: str) -> SignatureFacts:
    return SignatureFacts(
        chart_form_id="0b0c6a9e-3f7e-4a55-9b0e-6c2d8c1d2e01",
        form_id="5d1f7f43-8c2a-4b9b-8f1e-3a4b5c6d7e8f",
        form_version=2,
        signer="patient 7a1e2b3c-0000-4000-8000-000000000001",
        typed_name=typed_name,
        signed_at=SIGNED,
        source_address="203.0.113.9",
        user_agent="Mozilla/5.0 (Linux; Android 14) Mobile Safari/537.36",
        disclosure_version=1,
        document_sha256="ab" * 32,
        drawn_signature_sha256="",
        valid_now=True,
    )


def text_of(tmp_path: Path, pdf: bytes) -> tuple[str, str]:
    """(the text pdftotext reads, the pdffonts table)."""
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    return pdf_tool("pdftotext", "-enc", "UTF-8", str(path), "-"), pdf_tool("pdffonts", str(path))


def embedded_only(fonts: str) -> bool:
    rows = [line.split() for line in fonts.splitlines()[2:]]
    return bool(rows) and all(row[-5] == "yes" for row in rows)


@pytest.mark.parametrize("name", ["Zoë Ñúñez", "李小龙", "Иван Петров"])
def test_a_certificate_prints_the_signer_and_answers_as_typed(tmp_path: Path, name: str) -> None:
    answers = {"name": name, "city": "Москва", "lang": "zh", "notes": "Allergic to 青霉素."}
    pdf = certificate.render(
        DEFINITION,
        answers,
        facts(name),
        [TrailEntry(SIGNED, "chart_form.signed", "Łukasz Żółć", "203.0.113.9")],
    )
    text, fonts = text_of(tmp_path, pdf)
    assert f"Signed by (typed name): {name}" in text
    for expected in ("Согласие на лечение", "Город", "Москва", "中文", "青霉素", "Łukasz Żółć"):
        assert expected in text, expected
    assert "consentement éclairé" in text
    assert "ab" * 32 in text
    assert embedded_only(fonts), fonts
    # Chinese needs the fallback font; it is embedded here (answers in Chinese in every case).
    assert "DroidSansFallback" in fonts, fonts


def test_a_latin_certificate_leaves_the_large_fallback_font_out(tmp_path: Path) -> None:
    latin = Definition(title="Consent", kind="consent", items=(Item("n", "Name", "string"),))
    pdf = certificate.render(latin, {"n": "Zoë Ñúñez"}, facts("Zoë Ñúñez"), [])
    text, fonts = text_of(tmp_path, pdf)
    assert "Signed by (typed name): Zoë Ñúñez" in text
    assert "DroidSansFallback" not in fonts and embedded_only(fonts), fonts


def test_a_completed_form_for_the_records_prints_as_typed(tmp_path: Path) -> None:
    answers = {"name": "李小龙", "city": "Київ", "lang": "el"}
    text, fonts = text_of(tmp_path, certificate.render_form(DEFINITION, answers, SIGNED))
    for expected in ("Согласие на лечение", "李小龙", "Київ", "Ελληνικά"):
        assert expected in text, expected
    assert embedded_only(fonts), fonts


def test_a_form_letter_prints_as_typed(tmp_path: Path) -> None:
    body = "Dear Zoë Ñúñez,\n\nВаш приём подтверждён. 李小龙 先生 is your provider."  # noqa: RUF001
    pdf = letter_pdf.render("Clínica Ñandú", "Письмо", body, SIGNED)
    text, fonts = text_of(tmp_path, pdf)
    for expected in ("Clínica Ñandú", "Письмо", "Dear Zoë Ñúñez", "подтверждён", "李小龙 先生"):
        assert expected in text, expected
    assert embedded_only(fonts), fonts
