"""Refused times. SLOT_TAKEN / SLOT_UNAVAILABLE: a FAILED_PRECONDITION that also carries fresh
alternatives; PATIENT_BUSY: the patient has another appointment then (no alternatives: the
patient, not the calendar, is the problem).

The status details hold google.rpc.PreconditionFailure (so `precondition_kind` works as for every
other service) and a scheduling.v1.SlotTaken with the times the caller may book instead; the
gateway answers 409 with them as "alternatives".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.runtime.errors import abort_precondition
from services.runtime.principal import Principal

SLOT_TAKEN = "SLOT_TAKEN"
SLOT_UNAVAILABLE = "SLOT_UNAVAILABLE"
MESSAGES = {
    SLOT_TAKEN: "That time was just taken. Please choose another time.",
    SLOT_UNAVAILABLE: "That time is not available. Please choose another time.",
}


PATIENT_BUSY = "PATIENT_BUSY"
PATIENT_BUSY_TEXT = {
    "patient": "You already have an appointment at that time. "
    "See your appointments, or choose another time.",
    "staff": "This patient already has an appointment at that time. Choose another time.",
}


async def abort_patient_busy(
    context: grpc.aio.ServicerContext[Any, Any], principal: Principal
) -> NoReturn:
    text = PATIENT_BUSY_TEXT["patient" if principal.is_patient else "staff"]
    await abort_precondition(context, PATIENT_BUSY, text, subject="start")


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


async def abort_slot(
    context: grpc.aio.ServicerContext[Any, Any], kind: str, alternatives: Sequence[pb.Slot]
) -> NoReturn:
    failure = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type=kind, subject="start", description=MESSAGES[kind]
            )
        ]
    )
    status = status_pb2.Status(
        code=code_pb2.FAILED_PRECONDITION,
        message=MESSAGES[kind],
        details=[_pack(failure), _pack(pb.SlotTaken(alternatives=alternatives))],
    )
    await context.abort_with_status(rpc_status.to_status(status))  # type: ignore[attr-defined]
    raise AssertionError("unreachable")
