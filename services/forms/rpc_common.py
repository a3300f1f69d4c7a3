"""What every part of FormsService shares: the pool, id parsing, the patient scope rule."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import grpc

from portal.forms.v1 import forms_pb2_grpc as pb_grpc
from services.forms import access, chart_forms
from services.runtime.db import Conn
from services.runtime.errors import abort_invalid
from services.runtime.principal import Principal, PrincipalVerifier

Context = grpc.aio.ServicerContext[Any, Any]
STAFF = True  # any staff role
CATALOG_EDITORS = {"admin", "clinician"}
NOT_FOUND = "No such form."  # shown as is on the 404 page
NO_CHART = "This patient has no forms chart yet."


async def parse_id(context: Context, raw: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        await abort_invalid(context, {field: ["Not a valid id."]})


class ServicerBase(pb_grpc.FormsServiceServicer):
    def __init__(self, pool: asyncpg.Pool, principals: PrincipalVerifier) -> None:
        self.pool = pool
        self.principals = principals

    async def patient_of(self, context: Context, principal: Principal, raw: str) -> uuid.UUID:
        """A patient reads only their own chart, whatever id the request carries."""
        if principal.is_patient:
            return uuid.UUID(principal.subject)
        return await parse_id(context, raw, "patient_id")

    async def chart_form(
        self,
        conn: Conn,
        context: Context,
        principal: Principal,
        raw_id: str,
        *,
        lock: bool = False,
    ) -> asyncpg.Record:
        """The chart form, or NOT_FOUND; a patient finds only their own (never another's)."""
        try:
            chart_form_id = uuid.UUID(raw_id)
        except ValueError:
            await context.abort(grpc.StatusCode.NOT_FOUND, NOT_FOUND)
        owner = uuid.UUID(principal.subject) if principal.is_patient else None
        row = await chart_forms.get(conn, chart_form_id, patient_id=owner, lock=lock)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, NOT_FOUND)
        return row

    async def audit(
        self,
        conn: Conn,
        principal: Principal,
        action: str,
        row: asyncpg.Record,
        *,
        user_agent: str = "",
        detail: str = "",
    ) -> None:
        await access.record(
            conn,
            principal,
            action,
            row["patient_id"],
            chart_form_id=row["id"],
            user_agent=user_agent,
            detail=detail,
        )
