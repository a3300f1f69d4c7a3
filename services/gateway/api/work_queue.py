"""Profile updates (identity) and the staff work queue (every service's, merged) over the API.

A patient proposes changes to their own contact details (the session says whose); staff list
and decide them. The work queue is services/gateway/work_queue.py's merge: a service that is
down leaves its items out and is named under `unavailable`.
"""

from __future__ import annotations

from typing import Literal

import grpc

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, work_queue
from services.gateway.api.json_io import timestamp
from services.gateway.api.operation import Answer, Call, Operation, Reply, not_found, path_id
from services.gateway.api.records import found
from services.gateway.api.records_models import (
    ContactDetails,
    NewProfileUpdate,
    ProfileUpdate,
    ProfileUpdateDecision,
    ProfileUpdateList,
    ProfileUpdateQuery,
    StaffProfileUpdate,
    StaffProfileUpdateList,
    WorkQueue,
    WorkQueueItem,
    WorkQueueQuery,
)
from services.gateway.context import BACKENDS
from services.gateway.security import Problem
from services.runtime.errors import field_errors

ContactField = Literal["address", "phone", "email", "preferred_contact"]
CONTACT_FIELDS: tuple[ContactField, ...] = ("address", "phone", "email", "preferred_contact")


def contact(details: pb.ContactDetails) -> ContactDetails:
    return ContactDetails(
        **{name: getattr(details, name) for name in CONTACT_FIELDS if details.HasField(name)}
    )


def _update_fields(u: pb.ProfileUpdate) -> dict[str, object]:
    return {
        "id": u.id,
        "status": u.status,
        "proposed": contact(u.proposed),
        "decision_note": u.decision_note,
        "created_at": timestamp(u.created_at),
        "decided_at": timestamp(u.decided_at),
    }


def update(u: pb.ProfileUpdate) -> ProfileUpdate:
    return ProfileUpdate.model_validate(_update_fields(u))


def staff_update(u: pb.ProfileUpdate) -> StaffProfileUpdate:
    return StaffProfileUpdate.model_validate(
        {
            **_update_fields(u),
            "patient_id": u.patient_id,
            "patient_name": u.patient_name,
            "chart_number": u.chart_number,
            "current": contact(u.current),
            "decided_by": u.decided_by,
        }
    )


async def propose(call: Call[NewProfileUpdate, None]) -> Reply:
    body = call.body
    sent = body.model_dump(include=body.model_fields_set)
    try:
        created = await call.request.app[BACKENDS].identity.ProposeProfileUpdate(
            pb.ProposeProfileUpdateRequest(proposed=pb.ContactDetails(**sent)),
            metadata=auth.metadata(call.request, call.caller),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:  # the patient's record is gone
            raise not_found("patient") from None
        unchanged = field_errors(exc).get("proposed")
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and unchanged:
            # Valid values that are the patient's already: nothing to propose.
            raise Problem(409, "Not possible now", unchanged[0], code="NO_CHANGE") from None
        raise
    return Reply(update(created), status=201)


async def my_updates(call: Call[None, None]) -> Reply:
    reply = await call.request.app[BACKENDS].identity.ListMyProfileUpdates(
        pb.ListMyProfileUpdatesRequest(limit=100),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(ProfileUpdateList(items=[update(u) for u in reply.items]))


async def updates(call: Call[None, ProfileUpdateQuery]) -> Reply:
    reply = await call.request.app[BACKENDS].identity.ListProfileUpdates(
        pb.ListProfileUpdatesRequest(status=call.query.status, limit=500),
        metadata=auth.metadata(call.request, call.caller),
    )
    return Reply(StaffProfileUpdateList(items=[staff_update(u) for u in reply.items]))


async def decide(call: Call[ProfileUpdateDecision, None]) -> Reply:
    update_id = path_id(call, "update_id", "profile update")
    decided = await found(
        call.request.app[BACKENDS].identity.DecideProfileUpdate(
            pb.DecideProfileUpdateRequest(
                id=update_id, decision=call.body.decision, note=call.body.note
            ),
            metadata=auth.metadata(call.request, call.caller),
        ),
        "profile update",
    )
    return Reply(staff_update(decided))


async def queue(call: Call[None, WorkQueueQuery]) -> Reply:
    merged = await work_queue.merged(call.request, call.caller, call.query.kind, call.query.status)
    items = [
        WorkQueueItem.model_validate(
            {
                "kind": i.kind,
                "id": i.id,
                "patient_id": i.patient_id,
                "summary": i.summary,
                "created_at": i.created_at.isoformat().replace("+00:00", "Z")
                if i.created_at
                else None,
                "status": i.status,
            }
        )
        for i in merged.items
    ]
    return Reply(WorkQueue(items=items, unavailable=[o.service for o in merged.outages]))


def operations() -> list[Operation]:
    return [
        Operation(
            "POST",
            "/api/v1/portal/profile-updates",
            propose,
            operation_id="proposeProfileUpdate",
            summary="Propose changes to the patient's contact details (staff accept or reject)",
            description="Only the members sent are proposed; a pending proposal is replaced. "
            "409 NO_CHANGE when they are the patient's details already.",
            tag="portal",
            security="patient",
            body=NewProfileUpdate,
            answers=(Answer(201, "Proposed: pending.", ProfileUpdate),),
            problems=(409,),
        ),
        Operation(
            "GET",
            "/api/v1/portal/profile-updates",
            my_updates,
            operation_id="listMyProfileUpdates",
            summary="The patient's proposals and the clinic's answers, newest first",
            tag="portal",
            security="patient",
            answers=(Answer(200, "Proposals.", ProfileUpdateList),),
        ),
        Operation(
            "GET",
            "/api/v1/profile-updates",
            updates,
            operation_id="listProfileUpdates",
            summary="Patients' proposed contact changes with the current values, by status",
            tag="work-queue",
            security="staff",
            query=ProfileUpdateQuery,
            answers=(Answer(200, "Proposals.", StaffProfileUpdateList),),
        ),
        Operation(
            "POST",
            "/api/v1/profile-updates/{update_id}/decision",
            decide,
            operation_id="decideProfileUpdate",
            summary="Accept (the demographics change) or reject a proposal",
            description="409 when it was decided already.",
            tag="work-queue",
            security="staff",
            body=ProfileUpdateDecision,
            answers=(Answer(200, "Decided.", StaffProfileUpdate),),
            problems=(409,),
        ),
        Operation(
            "GET",
            "/api/v1/work-queue",
            queue,
            operation_id="listWorkQueue",
            summary="What patients did and what waits for staff, from every service, newest first",
            tag="work-queue",
            security="staff",
            query=WorkQueueQuery,
            answers=(Answer(200, "The queue.", WorkQueue),),
        ),
    ]
