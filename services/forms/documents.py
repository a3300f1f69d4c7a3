"""Chart documents in the database: uploads and form letters, their content and SHA-256.

Content stays in PostgreSQL (bytea) so `make run` needs nothing more; MAX_BYTES keeps a row,
and the gRPC messages that carry it, small enough (GRPC_MESSAGE_BYTES leaves room for the rest).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

import asyncpg

from services.forms import sniff
from services.runtime.db import Conn
from services.runtime.text import TextError, clean

MAX_BYTES = 10 * 1024 * 1024
GRPC_MESSAGE_BYTES = MAX_BYTES + 2 * 1024 * 1024
MAX_TITLE = 200
CATEGORIES = ("letter", "report", "record")
TOO_LARGE = f"The file is larger than {MAX_BYTES // (1024 * 1024)} MiB."
EMPTY = "Choose a file to upload."
SUMMARY = """id, patient_id, category, title, origin, content_type, size, sha256, filename,
             body, template_id, share_with_patient, created_at, created_by"""
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")


@dataclass(frozen=True)
class New:
    patient_id: uuid.UUID
    category: str
    title: str
    origin: str  # upload | letter
    content_type: str
    content: bytes
    filename: str
    share_with_patient: bool
    created_by: str
    body: str | None = None
    template_id: uuid.UUID | None = None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_title(raw: str, errors: dict[str, list[str]]) -> str:
    try:
        title = " ".join(clean(raw).split())
    except TextError as exc:
        errors["title"] = [str(exc)]
        return ""
    if not title:
        errors["title"] = ["Give the document a title."]
    elif len(title) > MAX_TITLE:
        errors["title"] = [f"Must be at most {MAX_TITLE} characters."]
    return title


def check_content(data: bytes, errors: dict[str, list[str]]) -> str:
    """The sniffed content type ("" with a message in `errors` when the file is refused)."""
    if not data:
        errors["content"] = [EMPTY]
        return ""
    if len(data) > MAX_BYTES:
        errors["content"] = [TOO_LARGE]
        return ""
    found = sniff.content_type(data)
    if found is None:
        errors["content"] = [sniff.REFUSED]
        return ""
    return found


def download_name(title: str, content_type: str) -> str:
    """A file name safe in a Content-Disposition header, with the sniffed type's extension."""
    stem = _UNSAFE_NAME.sub("", title).strip(" .")[:80] or "document"
    return f"{stem}.{sniff.EXTENSIONS[content_type]}"


async def insert(conn: Conn, new: New) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""INSERT INTO documents (patient_id, category, title, origin, content_type, content,
                                   size, sha256, filename, body, template_id,
                                   share_with_patient, created_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
            RETURNING {SUMMARY}""",
        new.patient_id,
        new.category,
        new.title,
        new.origin,
        new.content_type,
        new.content,
        len(new.content),
        sha256(new.content),
        download_name(new.title, new.content_type),
        new.body,
        new.template_id,
        new.share_with_patient,
        new.created_by,
    )
    if row is None:
        raise LookupError("insert returned no row")
    return row


async def list_for_patient(
    conn: Conn, patient_id: uuid.UUID, *, shared_only: bool
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {SUMMARY} FROM documents
            WHERE patient_id = $1 AND (NOT $2 OR share_with_patient)
            ORDER BY created_at DESC, id DESC""",
        patient_id,
        shared_only,
    )


async def get(
    conn: Conn, document_id: uuid.UUID, *, patient_id: uuid.UUID | None, content: bool = False
) -> asyncpg.Record | None:
    """One document; with patient_id, only that patient's and only when shared with them."""
    columns = SUMMARY + (", content" if content else "")
    return await conn.fetchrow(
        f"""SELECT {columns} FROM documents
            WHERE id = $1 AND ($2::uuid IS NULL OR (patient_id = $2 AND share_with_patient))""",
        document_id,
        patient_id,
    )


async def set_sharing(conn: Conn, document_id: uuid.UUID, share: bool) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""UPDATE documents SET share_with_patient = $2 WHERE id = $1 RETURNING {SUMMARY}""",
        document_id,
        share,
    )
