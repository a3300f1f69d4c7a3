"""What a patient can read in Records: shared documents, completed forms, signed forms.

Refill requests are chart forms too, but they live on the Refills page, not here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from services.runtime.db import Conn


@dataclass(frozen=True)
class Record:
    kind: str  # document | form | certificate
    id: str
    title: str
    category: str
    content_type: str
    created_at: datetime


async def list_for_patient(conn: Conn, patient_id: uuid.UUID, *, shared_only: bool) -> list[Record]:
    """Newest first."""
    rows = await conn.fetch(
        """SELECT 'document' AS kind, id, title, category, content_type, created_at
           FROM documents WHERE patient_id = $1 AND (NOT $2 OR share_with_patient)
           UNION ALL
           SELECT CASE WHEN s.chart_form_id IS NULL THEN 'form' ELSE 'certificate' END,
                  cf.id, v.title, 'form', 'application/pdf', cf.submitted_at
           FROM chart_forms cf
           JOIN form_versions v ON v.form_id = cf.form_id AND v.version = cf.form_version
           LEFT JOIN signatures s ON s.chart_form_id = cf.id
           WHERE cf.patient_id = $1 AND cf.origin <> 'refill'
             AND cf.status IN ('completed', 'signed', 'accepted') AND cf.submitted_at IS NOT NULL
           ORDER BY created_at DESC, id DESC""",
        patient_id,
        shared_only,
    )
    return [
        Record(
            r["kind"], str(r["id"]), r["title"], r["category"], r["content_type"], r["created_at"]
        )
        for r in rows
    ]
