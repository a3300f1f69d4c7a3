"""The signed document of an eSignature and its SHA-256, in RFC 8785 (JCS) canonical JSON.

    {"answers": {...}, "form_id": "<uuid>", "form_version": 3, "typed_name": "Ada Lovelace"}

Anyone can recompute the hash in any language with a JCS library: the same answers give the
same bytes, whatever order or spacing they were stored in.
"""

from __future__ import annotations

import hashlib

import rfc8785

from services.forms.definitions import Json


def signed_document(
    form_id: str, form_version: int, answers: dict[str, Json], typed_name: str
) -> bytes:
    return rfc8785.dumps(
        {
            "answers": answers,
            "form_id": form_id,
            "form_version": form_version,
            "typed_name": typed_name,
        }
    )


def document_sha256(
    form_id: str, form_version: int, answers: dict[str, Json], typed_name: str
) -> str:
    return hashlib.sha256(signed_document(form_id, form_version, answers, typed_name)).hexdigest()
