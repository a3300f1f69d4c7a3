"""FormsService, refills part: prescription refill requests and forms' staff work queue."""

from __future__ import annotations

import uuid

import asyncpg
import grpc

from portal.forms.v1 import forms_pb2 as pb
from services.forms import access, medications, records_events, refills, work_queue
from services.forms.convert import timestamp
from services.forms.records_convert import REFILL_STATUS_NAMES, refill
from services.forms.rpc_common import STAFF, Context, ServicerBase
from services.runtime.db import Conn
from services.runtime.errors import abort_invalid, abort_precondition, bad_request
from services.runtime.principal import Principal, requires
from services.runtime.text import TextError, clean

NO_REFILL = "No such refill request."
CHOOSE_OR_TYPE = "Choose one of your medications or type another medicine, not both."
NOT_OFFERED = "The clinic does not take refill requests through the portal at the moment."


class RefillRpc(ServicerBase):
    @requires(patient=True)
    async def RequestRefill(
        self, request: pb.RequestRefillRequest, context: Context, principal: Principal
    ) -> pb.RefillRequest:
        patient_id = uuid.UUID(principal.subject)
        async with self.pool.acquire() as conn, conn.transaction():
            form = await refills.portal_form(conn)
            if form is None:
                await abort_precondition(context, "REFILLS_NOT_OFFERED", NOT_OFFERED)
            medication_id, name, dose = await self._chosen(conn, context, patient_id, request)
            fields, errors = refills.validate(
                name, request.dose or dose, request.quantity, request.pharmacy, request.note
            )
            if errors:
                await abort_invalid(context, errors)
            pending = await refills.pending_for(conn, patient_id, fields)
            if pending:
                message = (
                    f"You already asked for a refill of {pending}; the clinic has not answered yet."
                )
                where = "medication_id" if medication_id else "medication"
                await abort_precondition(
                    context, "REFILL_PENDING", message, "", bad_request({where: [message]})
                )
            refill_id = await refills.create(conn, patient_id, form, fields, medication_id)
            row = await self._row(conn, refill_id)
            await access.record(
                conn, principal, "refill.requested", patient_id, chart_form_id=refill_id
            )
            await records_events.refill(conn, "requested", row, principal.subject)
        return refill(row, staff=False)

    async def _chosen(
        self, conn: Conn, context: Context, patient_id: uuid.UUID, request: pb.RequestRefillRequest
    ) -> tuple[uuid.UUID | None, str, str]:
        """The medication chosen from the patient's current ones, or the one typed (not both:
        which one the dose and quantity are for would be a guess)."""
        if not request.medication_id:
            return None, request.medication, ""
        if request.medication.strip():
            await abort_invalid(context, {"medication": [CHOOSE_OR_TYPE]})
        try:
            medication_id = uuid.UUID(request.medication_id)
        except ValueError:
            medication_id = None
        row = (
            await medications.get(conn, medication_id, patient_id=patient_id)
            if medication_id
            else None
        )
        if row is None or row["discontinued_at"] is not None:
            await abort_invalid(
                context, {"medication_id": ["Choose one of your current medications."]}
            )
        return row["id"], row["name"], row["dose"]

    async def _row(self, conn: Conn, refill_id: uuid.UUID) -> asyncpg.Record:
        row = await refills.get(conn, refill_id, patient_id=None)
        if row is None:
            raise LookupError(refill_id)
        return row

    @requires(staff=STAFF, patient=True)
    async def ListRefillRequests(
        self, request: pb.ListRefillRequestsRequest, context: Context, principal: Principal
    ) -> pb.ListRefillRequestsResponse:
        patient_id: uuid.UUID | None = None
        if principal.is_patient or request.patient_id:
            patient_id = await self.patient_of(context, principal, request.patient_id)
        status = REFILL_STATUS_NAMES.get(request.status, "")
        async with self.pool.acquire() as conn:
            rows = await refills.list_requests(conn, patient_id, status)
            offered = await refills.portal_form(conn) is not None
            await access.record(conn, principal, "refills.list", patient_id)
        staff = not principal.is_patient
        return pb.ListRefillRequestsResponse(
            items=[refill(r, staff=staff) for r in rows], offered=offered
        )

    @requires(staff=STAFF, patient=True)
    async def GetRefillRequest(
        self, request: pb.GetRefillRequestRequest, context: Context, principal: Principal
    ) -> pb.RefillRequest:
        async with self.pool.acquire() as conn:
            row = await self._refill(conn, context, principal, request.refill_request_id)
            await access.record(
                conn,
                principal,
                "refill.read",
                row["patient_id"],
                chart_form_id=row["chart_form_id"],
            )
        return refill(row, staff=not principal.is_patient)

    async def _refill(
        self, conn: Conn, context: Context, principal: Principal, raw: str, *, lock: bool = False
    ) -> asyncpg.Record:
        """The request, or NOT_FOUND; a patient finds only their own (never another's)."""
        try:
            refill_id = uuid.UUID(raw)
        except ValueError:
            await context.abort(grpc.StatusCode.NOT_FOUND, NO_REFILL)
        owner = uuid.UUID(principal.subject) if principal.is_patient else None
        row = await refills.get(conn, refill_id, patient_id=owner, lock=lock)
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, NO_REFILL)
        return row

    @requires(patient=True)
    async def WithdrawRefillRequest(
        self, request: pb.WithdrawRefillRequestRequest, context: Context, principal: Principal
    ) -> pb.RefillRequest:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._refill(conn, context, principal, request.refill_request_id, lock=True)
            await self._pending(context, row)
            updated = await refills.set_status(conn, row["chart_form_id"], "withdrawn", "", "")
            await access.record(
                conn,
                principal,
                "refill.withdrawn",
                row["patient_id"],
                chart_form_id=row["chart_form_id"],
            )
            await records_events.refill(conn, "withdrawn", updated, principal.subject)
        return refill(updated, staff=False)

    async def _pending(self, context: Context, row: asyncpg.Record) -> None:
        if row["status"] != refills.PENDING:
            await abort_precondition(
                context, "NOT_PENDING", "This refill request has been answered or withdrawn."
            )

    @requires(staff=STAFF)
    async def DecideRefillRequest(
        self, request: pb.DecideRefillRequestRequest, context: Context, principal: Principal
    ) -> pb.RefillRequest:
        decision = REFILL_STATUS_NAMES.get(request.decision, "")
        if decision not in refills.DECISIONS:
            await abort_invalid(context, {"decision": ["Approve, deny or ask for an appointment."]})
        note = ""
        try:
            note = clean(request.note, multiline=True).strip()
        except TextError as exc:
            await abort_invalid(context, {"note": [str(exc)]})
        if len(note) > refills.MAX_NOTE:
            await abort_invalid(
                context, {"note": [f"Must be at most {refills.MAX_NOTE} characters."]}
            )
        if decision == "denied" and not note:
            await abort_invalid(context, {"note": ["Give the patient the reason for the denial."]})
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self._refill(conn, context, principal, request.refill_request_id, lock=True)
            await self._pending(context, row)
            updated = await refills.set_status(
                conn, row["chart_form_id"], decision, note, access.actor(principal)
            )
            await access.record(
                conn,
                principal,
                "refill.decided",
                row["patient_id"],
                chart_form_id=row["chart_form_id"],
                detail=decision,
            )
            await records_events.refill(conn, "decided", updated, principal.subject)
        return refill(updated, staff=True)

    @requires(staff=STAFF)
    async def ListWorkQueue(
        self, request: pb.ListWorkQueueRequest, context: Context, principal: Principal
    ) -> pb.ListWorkQueueResponse:
        if request.kind and request.kind not in work_queue.KINDS:
            await abort_invalid(context, {"kind": ["Unknown kind."]})
        async with self.pool.acquire() as conn:
            if request.count_only:
                total = await work_queue.count(conn, request.kind, request.status)
                return pb.ListWorkQueueResponse(total=total)
            found = await work_queue.items(conn, request.kind, request.status)
            total = await work_queue.count(conn, request.kind, request.status)
            # One row names every patient the list showed.
            patients = sorted({i.patient_id for i in found})
            await access.record(conn, principal, "work_queue.list", None, detail=",".join(patients))
        return pb.ListWorkQueueResponse(
            total=total,
            items=[
                pb.WorkQueueItem(
                    kind=i.kind,
                    id=i.id,
                    patient_id=i.patient_id,
                    summary=i.summary,
                    created_at=timestamp(i.created_at),
                    status=i.status,
                )
                for i in found
            ],
        )
