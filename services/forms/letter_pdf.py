"""A form letter as PDF: the clinic's name, the title, then the text as written.

It embeds the same Unicode fonts as the portal credentials letter (services.runtime.fonts), so
names print as typed. The PDF's metadata carries no patient data.
"""

from __future__ import annotations

from datetime import datetime

from fpdf import FPDF

from services.runtime.fonts import add_fonts


def render(clinic_name: str, title: str, body: str, created_at: datetime) -> bytes:
    """PDF bytes (CPU-bound for a fraction of a second: call it in a thread)."""
    pdf = FPDF(format="letter", unit="mm")
    add_fonts(pdf, [clinic_name, title, body])
    pdf.set_margins(22, 20, 22)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_title("Letter")
    pdf.set_author(clinic_name or "Clinic")
    pdf.set_creator("patient-portal forms")
    pdf.set_creation_date(created_at)
    pdf.add_page()
    if clinic_name:
        pdf.set_font("Sans", "B", 16)
        pdf.multi_cell(0, 8, clinic_name, align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_line_width(0.6)
        pdf.line(pdf.l_margin, pdf.get_y() + 2, pdf.l_margin + pdf.epw, pdf.get_y() + 2)
        pdf.ln(8)
    pdf.set_font("Sans", "B", 14)
    pdf.multi_cell(0, 7, title, align="L", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Sans", "", 11)
    for paragraph in body.split("\n"):
        if paragraph.strip():
            pdf.multi_cell(0, 6, paragraph, align="L", new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.ln(4)
    return bytes(pdf.output())
