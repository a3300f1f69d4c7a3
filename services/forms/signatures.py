"""eSignature records: checked input, the signed document's hash, verification.

The signer, time and source come from the principal and the server clock, never the request.
Rows are written once; a trigger refuses UPDATE, DELETE and TRUNCATE of `signatures`.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass

import asyncpg

from services.forms import canonical
from services.forms.chart_forms import answers_of, one
from services.runtime.db import Conn
from services.runtime.errors import FieldErrors
from services.runtime.text import TextError, clean

MAX_PNG_BYTES = 256 * 1024
MAX_PNG_SIDE = 4000
MAX_NAME = 200
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass(frozen=True)
class Request:
    typed_name: str
    agreed: bool
    png: bytes


def check(request: Request) -> tuple[str, FieldErrors]:
    """The typed name cleaned, and what is wrong with the request (in the page's order)."""
    errors: FieldErrors = {}
    if not request.agreed:
        errors["agree_to_electronic_signature"] = ["Agree to sign electronically to sign."]
    name = ""
    try:
        name = " ".join(clean(request.typed_name).split())
    except TextError as exc:
        errors["typed_name"] = [str(exc)]
    if not name and "typed_name" not in errors:
        errors["typed_name"] = ["Type your full name to sign."]
    elif len(name) > MAX_NAME:
        errors["typed_name"] = [f"Must be at most {MAX_NAME} characters."]
    if request.png and not is_png(request.png):
        errors["drawn_signature_png"] = [
            f"Must be a PNG image of at most {MAX_PNG_BYTES // 1024} KiB and "
            f"{MAX_PNG_SIDE}x{MAX_PNG_SIDE} pixels."
        ]
    return name, errors


def is_png(data: bytes) -> bool:
    """A whole PNG (signature, IHDR first, IEND last) within the size limits."""
    if len(data) > MAX_PNG_BYTES or len(data) < 8 + 25 + 12:
        return False
    if not data.startswith(PNG_MAGIC) or data[12:16] != b"IHDR" or not data.endswith(PNG_END):
        return False
    width, height = struct.unpack(">II", data[16:24])
    return bool(0 < width <= MAX_PNG_SIDE and 0 < height <= MAX_PNG_SIDE)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def current_disclosure(conn: Conn) -> asyncpg.Record:
    return one(
        await conn.fetchrow(
            "SELECT version, text FROM signature_disclosures ORDER BY version DESC LIMIT 1"
        )
    )


async def insert(
    conn: Conn,
    chart_form: asyncpg.Record,
    *,
    signer_kind: str,
    signer_id: str,
    typed_name: str,
    source_address: str,
    user_agent: str,
    disclosure_version: int,
    png: bytes,
) -> asyncpg.Record:
    """Record the signature over the chart form's stored answers (already final)."""
    digest = canonical.document_sha256(
        str(chart_form["form_id"]), chart_form["form_version"], answers_of(chart_form), typed_name
    )
    row = await conn.fetchrow(
        """INSERT INTO signatures (chart_form_id, patient_id, signer_kind, signer_id, typed_name,
                                   source_address, user_agent, form_id, form_version,
                                   disclosure_version, document_sha256, drawn_signature,
                                   drawn_signature_sha256)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
           RETURNING *""",
        chart_form["id"],
        chart_form["patient_id"],
        signer_kind,
        signer_id,
        typed_name,
        source_address,
        user_agent[:512],
        chart_form["form_id"],
        chart_form["form_version"],
        disclosure_version,
        digest,
        png or None,
        sha256(png) if png else "",
    )
    return one(row)


async def get(conn: Conn, chart_form_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM signatures WHERE chart_form_id = $1", chart_form_id)


@dataclass(frozen=True)
class Verification:
    valid: bool
    recorded: str
    recomputed: str
    image_valid: bool


def verify(chart_form: asyncpg.Record, signature: asyncpg.Record) -> Verification:
    """Recompute the hash from the answers stored now and compare with the recorded one."""
    recomputed = canonical.document_sha256(
        str(signature["form_id"]),
        signature["form_version"],
        answers_of(chart_form),
        signature["typed_name"],
    )
    image = signature["drawn_signature"]
    image_valid = (
        sha256(bytes(image)) == signature["drawn_signature_sha256"]
        if image is not None
        else signature["drawn_signature_sha256"] == ""
    )
    return Verification(
        valid=recomputed == signature["document_sha256"]
        and str(chart_form["form_id"]) == str(signature["form_id"])
        and chart_form["form_version"] == signature["form_version"],
        recorded=signature["document_sha256"],
        recomputed=recomputed,
        image_valid=image_valid,
    )
