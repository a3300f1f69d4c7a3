"""The printable portal credentials letter: its wording, and the same letter as a PDF.

The HTML page (templates/staff/credentials_letter.html) and the PDF share the wording below so
the two never drift apart. The PDF embeds DejaVu (Latin, Greek, Cyrillic, Vietnamese ...) and,
for what DejaVu lacks (Chinese, Japanese, Korean), Droid Sans Fallback: names print as typed.
The fonts are found by services.runtime.fonts (system packages).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from fpdf import FPDF

from services.gateway.demographics import REALM_LABEL
from services.runtime.fonts import FontsMissing as FontsMissing  # staff pages catch it here
from services.runtime.fonts import add_fonts

_REALM_USE = {
    "onsite": "The onsite portal is for use at the clinic.",
    "offsite": "The offsite portal works from home or anywhere with an Internet connection.",
}

FOOTER = (
    "This password is shown only on this letter; the clinic cannot print it again. "
    "In a medical emergency, call your local emergency number. Do not use the portal."
)


def format_expiry(value: datetime, zone: tzinfo = UTC) -> str:
    """In the clinic's time zone, which the text names."""
    return value.astimezone(zone).strftime("%A %d %B %Y at %H:%M %Z")


@dataclass(frozen=True)
class CredentialsLetter:
    clinic_name: str
    patient_name: str
    realm: str  # onsite | offsite
    web_address: str
    username: str
    password: str
    expires_at: datetime | None
    issued_at: datetime
    reset: bool = False  # a temporary password after a reset, not first credentials
    zone: tzinfo = UTC  # the clinic's time zone, for the dates on the letter

    footer = FOOTER

    @property
    def realm_label(self) -> str:
        return REALM_LABEL.get(self.realm, self.realm)

    @property
    def title(self) -> str:
        return f"Your {self.realm_label} Patient Portal sign-in details"

    @property
    def issued_on(self) -> str:
        return self.issued_at.astimezone(self.zone).strftime("%d %B %Y")

    @property
    def expires(self) -> str:
        return format_expiry(self.expires_at, self.zone) if self.expires_at is not None else ""

    def intro(self) -> str:
        if self.reset:
            return (
                f"{self.clinic_name} has reset your Patient Portal password. Use the temporary "
                "password below to sign in; your previous password no longer works."
            )
        return (
            f"{self.clinic_name} has set up your Patient Portal account. With it you can see "
            "your records, complete forms, request prescription refills and schedule "
            "appointments online."
        )

    def instructions(self) -> list[str]:
        steps = [
            "Go to the Patient Portal Web Address above and sign in with your User Name and "
            f"Password. {_REALM_USE.get(self.realm, '')}".strip(),
            "You will be asked to choose a new password when you sign in. Choose one of at "
            "least 12 characters that you do not use anywhere else.",
        ]
        if self.expires:
            steps.append(
                f"This password expires on {self.expires}. If it has expired, ask the clinic "
                "for a new one."
            )
        steps.append(
            "Keep this letter private and do not share your password. Clinic staff will never "
            "ask you for it."
        )
        return steps


def _lines(
    pdf: FPDF,
    text: str,
    height: float,
    font: str = "Sans",
    style: str = "",
    size: float = 11,
    width: float = 0,
) -> None:
    """A left-aligned paragraph, wrapped to `width` (0: to the right margin)."""
    pdf.set_font(font, style, size)
    pdf.multi_cell(width, height, text, align="L", new_x="LMARGIN", new_y="NEXT")


def render_pdf(letter: CredentialsLetter) -> bytes:
    """The letter as PDF bytes (CPU-bound for a fraction of a second: call it in a thread)."""
    pdf = FPDF(format="letter", unit="mm")
    texts = [letter.clinic_name, letter.patient_name, letter.username, letter.password]
    texts += [letter.title, letter.intro(), *letter.instructions(), letter.issued_on, FOOTER]
    add_fonts(pdf, [*texts, letter.web_address])
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(auto=True, margin=18)
    # Document metadata carries no patient data.
    pdf.set_title("Patient Portal sign-in details")
    pdf.set_author(letter.clinic_name)
    pdf.set_creation_date(letter.issued_at)
    pdf.add_page()
    width = pdf.epw

    pdf.set_font("Sans", "B", 16)
    pdf.cell(width * 0.65, 8, letter.clinic_name)
    pdf.set_font("Sans", "", 10)
    pdf.cell(width * 0.35, 8, letter.issued_on, align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_line_width(0.6)
    pdf.line(pdf.l_margin, pdf.get_y() + 2, pdf.l_margin + width, pdf.get_y() + 2)
    pdf.ln(8)

    _lines(pdf, letter.title, 7, style="B", size=14)
    pdf.ln(2)
    _lines(pdf, f"For: {letter.patient_name}", 6)
    pdf.ln(2)
    _lines(pdf, letter.intro(), 6)
    pdf.ln(7)

    # The three things the patient needs, in a box, values in a fixed-width font.
    top = pdf.get_y()
    for label, value, size in (
        ("Patient Portal Web Address", letter.web_address, 11),
        ("User Name", letter.username, 14),
        ("Password", letter.password, 14),
    ):
        pdf.set_x(pdf.l_margin + 5)
        _lines(pdf, label, 6, style="B", size=10)
        pdf.set_x(pdf.l_margin + 5)
        _lines(pdf, value, 7, font="Mono", style="B", size=size, width=width - 10)
        pdf.ln(2)
    pdf.set_line_width(0.5)
    pdf.rect(pdf.l_margin, top - 3, width, pdf.get_y() - top + 3)
    pdf.ln(6)

    _lines(pdf, "How to sign in", 7, style="B", size=12)
    for number, step in enumerate(letter.instructions(), start=1):
        _lines(pdf, f"{number}.  {step}", 6)
        pdf.ln(1.5)
    pdf.ln(6)
    _lines(pdf, FOOTER, 5, size=9)
    return bytes(pdf.output())
