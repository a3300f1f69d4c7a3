"""FormsService, chart forms part: listing, answering, submitting and reviewing."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import grpc

from portal.forms.v1 import forms_pb2 as pb
from services.forms import access, answers, catalog, chart_forms, convert, events, signatures
from services.forms.chart_forms import EDITABLE, REVIEWABLE, answers_of, one
from services.forms.definitions import Item, Json
from services.forms.rpc_common import NO_CHART, NOT_FOUND, STAFF, Context, ServicerBase, parse_id
from services.runtime.db import Conn
from services.runtime.errors import FieldErrors, abort_invalid, abort_precondition
from services.runtime.principal import Principal, requires
from services.runtime.text import TextError, clean

MAX_PAGE = 200
DEFAULT_PAGE = 50
MAX_REASON = 2000
ANSWERS_INVALID = "Some required answers are missing or not valid."


class ChartFormRpc(ServicerBase):
    @requires(staff=STAFF, patient=True)
    async def ListChartForms(
        self, request: pb.ListChartFormsRequest, context: Context, principal: Principal
    ) -> pb.ListChartFormsResponse:
        patient_id = await self.patient_of(context, principal, request.patient_id)
        async with self.pool.acquire() as conn:
            rows = await chart_forms.list_for_patient(
                conn,
                patient_id,
                include_withdrawn=not principal.is_patient,
                audit=access.entry(principal, "chart_forms.list"),
            )
        return pb.ListChartFormsResponse(items=[convert.chart_form_summary(r) for r in rows])

    @requires(staff=STAFF, patient=True)
    async def GetChartForm(
        self, request: pb.GetChartFormRequest, context: Context, principal: Principal
    ) -> pb.ChartForm:
        async with self.pool.acquire() as conn:
            row = await self.chart_form(conn, context, principal, request.chart_form_id)
            await self.audit(conn, principal, "chart_form.read", row)
            return await self.full(conn, principal, row)

    async def full(
        self,
        conn: Conn,
        principal: Principal,
        row: asyncpg.Record,
        *,
        form: asyncpg.Record | None = None,
        signed: bool = True,
    ) -> pb.ChartForm:
        """The chart form with its definition, answers, signature and (staff) history.

        `form`: its version's row when the caller read it already; signed=False: the caller
        knows there is no signature (both save a round trip).
        """
        if form is None:
            form = await catalog.get_form(conn, row["form_id"], row["form_version"])
        if form is None:
            raise LookupError(row["form_id"])
        out = pb.ChartForm(
            summary=convert.chart_form_summary(row),
            form=convert.form(form),
            answers=convert.struct(answers_of(row)),
        )
        signature = await signatures.get(conn, row["id"]) if signed else None
        if signature is not None:
            out.signature.CopyFrom(convert.signature(signature))
        if not principal.is_patient:
            out.events.extend(convert.event(e) for e in await chart_forms.history(conn, row["id"]))
        return out

    @requires(staff=STAFF)
    async def AssignChartForm(
        self, request: pb.AssignChartFormRequest, context: Context, principal: Principal
    ) -> pb.ChartForm:
        patient_id = await parse_id(context, request.patient_id, "patient_id")
        form_id = await parse_id(context, request.form_id, "form_id")
        due = request.due.ToDatetime(tzinfo=UTC) if request.HasField("due") else None
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT true FROM charts WHERE patient_id = $1", patient_id):
                await context.abort(grpc.StatusCode.NOT_FOUND, NO_CHART)
            kinds = await catalog.existing(conn, [form_id])
            if form_id not in kinds:
                await abort_invalid(context, {"form_id": ["No such form."]})
            chart_form_id = await chart_forms.assign(
                conn, patient_id, form_id, assigned_by=access.actor(principal), due_at=due
            )
            row = one(await chart_forms.get(conn, chart_form_id, patient_id=None))
            await self.audit(conn, principal, "chart_form.assigned", row)
            await events.chart_form(conn, "assigned", row, row["kind"], principal.subject)
            return await self.full(conn, principal, row)

    @requires(patient=True)
    async def SaveAnswers(
        self, request: pb.SaveAnswersRequest, context: Context, principal: Principal
    ) -> pb.ChartForm:
        given = convert.answers_in(request.answers)
        async with self.pool.acquire() as conn:
            saved = await self.save_published(conn, context, principal, request, given)
            if saved is not None:
                return saved
        # The version is not published yet (its first answers), or the form changed meanwhile.
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self.chart_form(conn, context, principal, request.chart_form_id, lock=True)
            await self.editable(context, row)
            # Freeze the version before reading it: an edit in flight finishes first.
            await catalog.publish(conn, row["form_id"], row["form_version"])
            form = await catalog.get_form(conn, row["form_id"], row["form_version"])
            if form is None:
                raise LookupError(row["form_id"])
            cleaned, errors = answers.check(catalog.definition(form).items, given)
            if errors:
                await abort_invalid(context, errors, "Some answers are not valid.")
            fresh = await chart_forms.save_answers(conn, row["id"], cleaned)
            await self.audit(conn, principal, "chart_form.answers_saved", row)
            # An editable form is never signed (editable() above): no signature to read.
            return await self.full(conn, principal, fresh, form=form, signed=False)

    async def save_published(
        self,
        conn: Conn,
        context: Context,
        principal: Principal,
        request: pb.SaveAnswersRequest,
        given: dict[str, Json],
    ) -> pb.ChartForm | None:
        """The common save in two statements (read, then write with its audit row) and no
        transaction: a published version never changes, so the answers are checked against it
        without a lock, and the write happens only if the chart form still answers it and is
        still editable. None: take the locked path."""
        try:
            chart_form_id = uuid.UUID(request.chart_form_id)
        except ValueError:
            await context.abort(grpc.StatusCode.NOT_FOUND, NOT_FOUND)
        form = await chart_forms.form_of(conn, chart_form_id, uuid.UUID(principal.subject))
        if form is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, NOT_FOUND)
        if form["published_at"] is None:
            return None
        await self.editable(context, {"signed": form["signed"], "status": form["chart_status"]})
        cleaned, errors = answers.check(catalog.definition(form).items, given)
        if errors:
            await abort_invalid(context, errors, "Some answers are not valid.")
        fresh = await chart_forms.save_answers_if_editable(
            conn,
            chart_form_id,
            form["version"],
            cleaned,
            access.entry(principal, "chart_form.answers_saved"),
        )
        if fresh is None:
            return None
        return await self.full(conn, principal, fresh, form=form, signed=False)

    @requires(patient=True)
    async def SubmitChartForm(
        self, request: pb.SubmitChartFormRequest, context: Context, principal: Principal
    ) -> pb.ChartForm:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self.chart_form(conn, context, principal, request.chart_form_id, lock=True)
            await self.editable(context, row)
            if row["kind"] == "consent":
                await abort_precondition(
                    context, "SIGNATURE_REQUIRED", "A consent form is completed by signing it."
                )
            _, final = await self.finished_answers(conn, context, row)
            updated = await chart_forms.complete(conn, row["id"], final, "completed")
            await self.audit(conn, principal, "chart_form.submitted", row)
            await events.chart_form(conn, "submitted", updated, row["kind"], principal.subject)
            fresh = one(await chart_forms.get(conn, row["id"], patient_id=None))
            return await self.full(conn, principal, fresh)

    async def finished_answers(
        self, conn: Conn, context: Context, row: asyncpg.Record
    ) -> tuple[tuple[Item, ...], dict[str, Json]]:
        """The form's items and the stored answers if every enabled required item is answered,
        else INVALID_ARGUMENT naming each missing or invalid link_id."""
        items, stored, errors = await self.answer_problems(conn, row)
        if errors:
            await abort_invalid(context, errors, ANSWERS_INVALID)
        return items, answers.keep_enabled(items, stored)

    async def answer_problems(
        self, conn: Conn, row: asyncpg.Record
    ) -> tuple[tuple[Item, ...], dict[str, Json], FieldErrors]:
        """The form's items, the stored answers, and each missing or invalid link_id's messages."""
        await catalog.publish(conn, row["form_id"], row["form_version"])
        items = await self.items(conn, row)
        stored, errors = answers.check(items, answers_of(row))
        for link_id in answers.missing(items, stored):
            errors.setdefault(link_id, []).append(answers.REQUIRED)
        return items, stored, errors

    async def items(self, conn: Conn, row: asyncpg.Record) -> tuple[Item, ...]:
        form = await catalog.get_form(conn, row["form_id"], row["form_version"])
        if form is None:
            raise LookupError(row["form_id"])
        return catalog.definition(form).items

    async def editable(self, context: Context, row: asyncpg.Record | Mapping[str, Any]) -> None:
        if row["signed"]:
            await abort_precondition(context, "ALREADY_SIGNED", "This form is signed already.")
        if row["status"] not in EDITABLE:
            await abort_precondition(
                context, "NOT_EDITABLE", "This form was submitted and cannot be changed now."
            )

    @requires(staff=STAFF)
    async def ReviewChartForm(
        self, request: pb.ReviewChartFormRequest, context: Context, principal: Principal
    ) -> pb.ChartForm:
        reason = ""
        if request.decision == pb.REVIEW_DECISION_RETURN:
            try:
                reason = clean(request.note, multiline=True).strip()
            except TextError as exc:
                await abort_invalid(context, {"note": [str(exc)]})
            if not reason or len(reason) > MAX_REASON:
                await abort_invalid(
                    context,
                    {"note": [f"Give the patient a reason (at most {MAX_REASON} characters)."]},
                )
        elif request.decision != pb.REVIEW_DECISION_ACCEPT:
            await abort_invalid(context, {"decision": ["Decision must be accept or return."]})
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self.chart_form(conn, context, principal, request.chart_form_id, lock=True)
            if row["status"] not in REVIEWABLE or row["origin"] == "refill":
                # A refill request is answered by its decision (DecideRefillRequest).
                await abort_precondition(
                    context, "NOT_REVIEWABLE", "Only completed or signed forms can be reviewed."
                )
            returning = request.decision == pb.REVIEW_DECISION_RETURN
            if returning and row["signed"]:
                # The signature covers these answers; assign the form again instead.
                await abort_precondition(
                    context, "ALREADY_SIGNED", "A signed form cannot be returned for changes."
                )
            status, event = ("returned", "returned") if returning else ("accepted", "accepted")
            updated = await chart_forms.review(
                conn, row["id"], status, access.actor(principal), reason
            )
            await self.audit(conn, principal, f"chart_form.{event}", row, detail=reason)
            await events.chart_form(conn, event, updated, row["kind"], principal.subject)
            fresh = one(await chart_forms.get(conn, row["id"], patient_id=None))
            return await self.full(conn, principal, fresh)

    @requires(staff=STAFF)
    async def ListReviewQueue(
        self, request: pb.ListReviewQueueRequest, context: Context, principal: Principal
    ) -> pb.ListReviewQueueResponse:
        size = min(request.page_size or DEFAULT_PAGE, MAX_PAGE)
        after = await _parse_token(context, request.page_token) if request.page_token else None
        async with self.pool.acquire() as conn:
            rows = await chart_forms.review_queue(conn, size + 1, after)
            await access.record(conn, principal, "review_queue.list", None)
        out = pb.ListReviewQueueResponse(items=[convert.chart_form_summary(r) for r in rows[:size]])
        if len(rows) > size:
            last = rows[size - 1]
            out.next_page_token = _token(last["submitted_at"], last["id"])
        return out


def _token(at: datetime, chart_form_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{chart_form_id}".encode()).decode()


async def _parse_token(context: Context, token: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, _, raw_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return datetime.fromisoformat(at), uuid.UUID(raw_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        await abort_invalid(context, {"page_token": ["Not a valid page token."]})
