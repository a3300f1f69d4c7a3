"""What an uploaded file is, read from its bytes (magic numbers); the client's word is ignored.

Only PDF and the common raster images are kept; everything else (HTML, SVG, scripts, office
files ...) is refused. A PDF must start with its header and carry the end-of-file marker near
its end, so an HTML page that merely calls itself .pdf is refused.
"""

from __future__ import annotations

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
GIF = "image/gif"
WEBP = "image/webp"
ALLOWED = (PDF, PNG, JPEG, GIF, WEBP)
EXTENSIONS = {PDF: "pdf", PNG: "png", JPEG: "jpg", GIF: "gif", WEBP: "webp"}
REFUSED = "Only PDF files and PNG, JPEG, GIF or WebP images can be added."
_PDF_TAIL = 2048  # bytes from the end in which "%%EOF" must appear


def content_type(data: bytes) -> str | None:
    """The type `data` is, or None when it is none of ALLOWED."""
    if data.startswith(b"%PDF-") and b"%%EOF" in data[-_PDF_TAIL:]:
        return PDF
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    return None
