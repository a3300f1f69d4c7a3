"""The signature certificate: the form with its answers, then the audit trail, as PDF bytes.

fpdf2's core fonts exist everywhere but cover only latin-1, so text is folded to its closest
latin-1 spelling; the record itself (and the hash) keep the exact text.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from fpdf import FPDF

from services.forms.definitions import NO_ANSWER_TYPES, Definition, Item, Json


@dataclass(frozen=True)
class SignatureFacts:
    chart_form_id: str
    form_id: str
    form_version: int
    signer: str  # kind and id from the principal
    typed_name: str
    signed_at: datetime
    source_address: str
    user_agent: str
    disclosure_version: int
    document_sha256: str
    drawn_signature_sha256: str
    valid_now: bool


@dataclass(frozen=True)
class TrailEntry:
    at: datetime
    action: str
    actor: str
    source_address: str


def latin1(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("latin-1", "ignore").decode("latin-1")
    return unicodedata.normalize("NFC", folded) if folded.strip() or not text else "?"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z")


def answer_text(item: Item, value: Json) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if item.options and isinstance(value, str):
        labels = {o.value: o.label for o in item.options}
        return labels.get(value, value)
    if isinstance(value, dict):
        return f"[file] {value.get('title') or value.get('content_type', '')}"
    return str(value)


class _Pdf:
    def __init__(self, title: str) -> None:
        self.pdf = FPDF(format="letter", unit="mm")
        self.pdf.set_title(latin1(title))
        self.pdf.set_creator("patient-portal forms")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.add_page()
        self.width = self.pdf.w - self.pdf.l_margin - self.pdf.r_margin

    def line(self, text: str, *, size: int = 10, style: str = "", font: str = "Helvetica") -> None:
        self.pdf.set_font(font, style, size)
        self.pdf.multi_cell(
            self.width, size * 0.5, latin1(text), align="L", new_x="LMARGIN", new_y="NEXT"
        )

    def gap(self, mm: float = 3) -> None:
        self.pdf.ln(mm)


def render(
    definition: Definition,
    answers: dict[str, Json],
    facts: SignatureFacts,
    trail: list[TrailEntry],
) -> bytes:
    doc = _Pdf(f"Signature certificate - {definition.title}")
    doc.line(definition.title, size=16, style="B")
    doc.line(f"Form {facts.form_id}, version {facts.form_version}", size=9)
    if definition.description:
        doc.line(definition.description)
    doc.gap()
    _items(doc, definition.items, answers, depth=0)

    doc.gap(6)
    doc.line("Electronic signature", size=14, style="B")
    for label, value in (
        ("Signed by (typed name)", facts.typed_name),
        ("Signer", facts.signer),
        ("Signed at (server clock)", _when(facts.signed_at)),
        ("From address", facts.source_address or "-"),
        ("User agent", facts.user_agent or "-"),
        ("Disclosure accepted", f"version {facts.disclosure_version}"),
        ("Chart form", facts.chart_form_id),
        ("Drawn signature SHA-256", facts.drawn_signature_sha256 or "none drawn"),
    ):
        doc.line(f"{label}: {value}", size=9)
    doc.line(
        "Document SHA-256 (RFC 8785 canonical JSON of answers, form_id, form_version, typed_name):",
        size=9,
    )
    doc.line(facts.document_sha256, size=9, font="Courier", style="B")
    verdict = "match" if facts.valid_now else "DO NOT MATCH - the answers were altered"
    doc.line(f"The answers stored when this certificate was made {verdict}.", size=9, style="B")

    doc.gap(6)
    doc.line("Audit trail", size=14, style="B")
    for entry in trail:
        where = f" from {entry.source_address}" if entry.source_address else ""
        doc.line(f"{_when(entry.at)}  {entry.action}  by {entry.actor}{where}", size=8)
    return bytes(doc.pdf.output())


def _items(doc: _Pdf, items: tuple[Item, ...], answers: dict[str, Json], depth: int) -> None:
    indent = "    " * depth
    for item in items:
        if item.type == "group":
            doc.line(indent + item.text, style="B")
            _items(doc, item.items, answers, depth + 1)
        elif item.type == "display":
            doc.line(indent + item.text, size=9)
        elif item.type not in NO_ANSWER_TYPES:
            doc.line(indent + item.text, size=9, style="B")
            doc.line(indent + "    " + answer_text(item, answers.get(item.link_id)), size=10)
