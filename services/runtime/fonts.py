"""Unicode fonts for the PDFs the gateway and forms make (letters): found, not shipped.

DejaVu covers Latin, Greek, Cyrillic, Vietnamese ...; for what it lacks (Chinese, Japanese,
Korean) Droid Sans Fallback is added, only when a text needs it (it is large). The fonts are
system packages (Debian: fonts-dejavu-core, fonts-droid-fallback), which `make` and the
container image install.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import TTFFont

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# (family, style) -> file name, found under FONT_DIRS.
FONTS = {
    ("Sans", ""): "DejaVuSans.ttf",
    ("Sans", "B"): "DejaVuSans-Bold.ttf",
    ("Mono", "B"): "DejaVuSansMono-Bold.ttf",
}
FALLBACK_FONT = "DroidSansFallbackFull.ttf"


class FontsMissing(RuntimeError):
    """The PDF cannot be made: a font file is not installed."""


@functools.cache
def font_path(name: str) -> Path:
    for directory in FONT_DIRS:
        for found in sorted(directory.rglob(name)) if directory.is_dir() else ():
            return found
    raise FontsMissing(
        f"font {name} is not installed (Debian: apt-get install fonts-dejavu-core "
        "fonts-droid-fallback)"
    )


def add_fonts(pdf: FPDF, texts: Iterable[str]) -> None:
    """Families "Sans" (regular, bold) and "Mono" (bold), with the fallback when `texts` need it."""
    for (family, style), name in FONTS.items():
        pdf.add_font(family, style, str(font_path(name)))
    needed = {ord(ch) for text in texts for ch in text if not ch.isspace()}
    fonts = [font for font in pdf.fonts.values() if isinstance(font, TTFFont)]
    if any(code not in font.cmap for font in fonts for code in needed):
        pdf.add_font("Fallback", "", str(font_path(FALLBACK_FONT)))
        # The fallback has one weight: bold text it draws comes out regular.
        pdf.set_fallback_fonts(["Fallback"], exact_match=False)
