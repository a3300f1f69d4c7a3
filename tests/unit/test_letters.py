"""The credentials letter PDF: names in any script print as typed (embedded Unicode fonts)."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.gateway.letters import CredentialsLetter, render_pdf

ISSUED = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def letter(name: str, clinic: str = "Demo Clinic") -> CredentialsLetter:
    return CredentialsLetter(
        clinic_name=clinic,
        patient_name=name,
        realm="offsite",
        web_address="https://portal.example.org/portal/offsite/",
        username="zangstrom",
        password="Kq7#mZ2v!pR9xT",
        expires_at=ISSUED + timedelta(hours=72),
        issued_at=ISSUED,
    )


def pdf_tool(name: str, *args: str) -> str:
    # poppler-utils: `make test` installs it with the browser (Makefile, target browser).
    tool = shutil.which(name)
    assert tool, f"{name} is missing: install poppler-utils (make browser does)"
    return subprocess.run([tool, *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("name", ["Zoë Ångström", "Nguyễn Văn An", "王小明", "Łukasz Żółć"])
def test_names_in_any_script_print_as_typed(tmp_path: Path, name: str) -> None:
    path = tmp_path / "letter.pdf"
    path.write_bytes(render_pdf(letter(name, clinic="Phòng khám Đống Đa")))
    text = pdf_tool("pdftotext", "-enc", "UTF-8", str(path), "-")
    assert f"For: {name}" in text
    assert "Phòng khám Đống Đa" in text
    assert "Kq7#mZ2v!pR9xT" in text and "zangstrom" in text
    fonts = pdf_tool("pdffonts", str(path))
    # Every font is embedded (emb = yes): the letter looks the same on any computer.
    rows = [line.split() for line in fonts.splitlines()[2:]]
    assert rows and all(row[-5] == "yes" for row in rows), fonts
    # The large CJK fallback goes in only when a letter needs it.
    assert ("DroidSansFallback" in fonts) == (name == "王小明"), fonts
