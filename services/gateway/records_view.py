"""What the patient and staff records pages share: labels, and how a document is served.

A document is served with the type forms sniffed at upload (PDF or an image: shown inline),
anything else as an attachment; `Content-Security-Policy: sandbox` keeps whatever a file holds
from running or reaching the portal's origin, and `X-Content-Type-Options: nosniff` (set on
every response) keeps the browser from guessing another type.
"""

from __future__ import annotations

import re

from aiohttp import web

from portal.forms.v1 import forms_pb2 as pb

INLINE_TYPES = frozenset({"application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp"})
DOCUMENT_CSP = "sandbox"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")

REFILL_STATUS = {
    pb.REFILL_STATUS_REQUESTED: ("requested", "Requested", "info"),
    pb.REFILL_STATUS_APPROVED: ("approved", "Approved", "success"),
    pb.REFILL_STATUS_DENIED: ("denied", "Denied", "danger"),
    pb.REFILL_STATUS_NEEDS_APPOINTMENT: ("needs_appointment", "Needs an appointment", "warning"),
    pb.REFILL_STATUS_WITHDRAWN: ("withdrawn", "Withdrawn", ""),
}
REFILL_STATUS_BY_NAME = {name: value for value, (name, _, _) in REFILL_STATUS.items()}
CATEGORY = {
    pb.DOCUMENT_CATEGORY_LETTER: ("letter", "Letter"),
    pb.DOCUMENT_CATEGORY_REPORT: ("report", "Report"),
    pb.DOCUMENT_CATEGORY_RECORD: ("record", "Record"),
}
CATEGORY_BY_NAME = {name: value for value, (name, _) in CATEGORY.items()}


def refill_status(status: pb.RefillStatus.ValueType) -> tuple[str, str, str]:
    """(name, label, badge level) of a refill status."""
    return REFILL_STATUS.get(status) or ("", "Unknown", "")


def document_response(content: bytes, content_type: str, filename: str) -> web.Response:
    """The bytes as the browser should get them: inline only for PDF and images."""
    inline = content_type in INLINE_TYPES
    name = _SAFE_NAME.sub("", filename).strip(" .") or "document"
    disposition = "inline" if inline else "attachment"
    return web.Response(
        body=content,
        headers={
            "Content-Type": content_type if inline else "application/octet-stream",
            "Content-Disposition": f'{disposition}; filename="{name}"',
            "Content-Security-Policy": DOCUMENT_CSP,
        },
    )
