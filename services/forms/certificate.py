"""The signature certificate: the form with its answers, then the audit trail, as PDF bytes.

People show by name, never by internal id (the certificate goes to the patient, and checking
it needs only the form id and version, the typed name, the answers and the chart form's id):
the signer is "the patient", a staff member their name, a service its name.

Both PDFs here embed the Unicode fonts the letters use (services.runtime.fonts: DejaVu, and
Droid Sans Fallback only when a text needs it), so names and answers print as typed in any
script. Rendering subsets fonts (CPU-bound for a fraction of a second): call it in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from fpdf import FPDF

from services.forms.access import name_of
from services.forms.definitions import NO_ANSWER_TYPES, Definition, Item, Json
from services.runtime.fonts import add_fonts


@dataclass(frozen=True)
class SignatureFacts:
    chart_form_id: str
    form_id: str
    form_version: int
    signer: str  # signer_text(): who signed, by kind (the principal's)
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


def signer_text(kind: str) -> str:
    """Who signed, as the certificate says it: only a patient signs, in their portal."""
    return "the patient, signed in to the patient portal" if kind == "patient" else kind


def actor_text(kind: str, recorded: str) -> str:
    """An audit trail's actor as people read it (access.actor() recorded it)."""
    if kind == "patient":
        return "the patient"
    if kind == "service":
        return f"the {recorded} service"
    return name_of(recorded)


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


@dataclass(frozen=True)
class _Line:
    text: str
    size: int
    style: str
    font: str


@dataclass
class _Doc:
    """The lines first, then the PDF: the fonts a document embeds depend on all of its text."""

    title: str
    lines: list[_Line | float] = field(default_factory=list)  # a float: a gap in mm

    def line(self, text: str, *, size: int = 10, style: str = "", font: str = "Sans") -> None:
        self.lines.append(_Line(text, size, style, font))

    def gap(self, mm: float = 3) -> None:
        self.lines.append(mm)

    def pdf(self) -> bytes:
        pdf = FPDF(format="letter", unit="mm")
        add_fonts(pdf, [line.text for line in self.lines if isinstance(line, _Line)])
        # The title is document metadata: it names the form, never the patient.
        pdf.set_title(self.title)
        pdf.set_creator("patient-portal forms")
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.add_page()
        for line in self.lines:
            if isinstance(line, _Line):
                pdf.set_font(line.font, line.style, line.size)
                pdf.multi_cell(
                    pdf.epw, line.size * 0.5, line.text, align="L", new_x="LMARGIN", new_y="NEXT"
                )
            else:
                pdf.ln(line)
        return bytes(pdf.output())


def render(
    definition: Definition,
    answers: dict[str, Json],
    facts: SignatureFacts,
    trail: list[TrailEntry],
) -> bytes:
    doc = _Doc(f"Signature certificate - {definition.title}")
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
    doc.line(facts.document_sha256, size=9, font="Mono", style="B")
    verdict = "match" if facts.valid_now else "DO NOT MATCH - the answers were altered"
    doc.line(f"The answers stored when this certificate was made {verdict}.", size=9, style="B")

    doc.gap(6)
    doc.line("Audit trail", size=14, style="B")
    for entry in trail:
        where = f" from {entry.source_address}" if entry.source_address else ""
        doc.line(f"{_when(entry.at)}  {entry.action}  by {entry.actor}{where}", size=8)
    return doc.pdf()


def render_form(definition: Definition, answers: dict[str, Json], submitted_at: datetime) -> bytes:
    """A completed (unsigned) form with its answers, for the patient's records."""
    doc = _Doc(definition.title)
    doc.line(definition.title, size=16, style="B")
    doc.line(f"Submitted {_when(submitted_at)}", size=9)
    if definition.description:
        doc.line(definition.description)
    doc.gap()
    _items(doc, definition.items, answers, depth=0)
    return doc.pdf()


def _items(doc: _Doc, items: tuple[Item, ...], answers: dict[str, Json], depth: int) -> None:
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
