"""Clear gRPC errors with details the gateway turns into problem+json field messages.

INVALID_ARGUMENT carries google.rpc.BadRequest field violations; FAILED_PRECONDITION carries
google.rpc.PreconditionFailure with a machine-readable type. Nothing else leaves a service:
unexpected exceptions become INTERNAL with no details (the log has the error type).
"""

from __future__ import annotations

from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

FieldErrors = dict[str, list[str]]


async def abort_invalid(
    context: grpc.aio.ServicerContext[Any, Any], errors: FieldErrors, message: str = ""
) -> NoReturn:
    detail = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
            for field, texts in errors.items()
            for text in texts
        ]
    )
    await _abort(context, code_pb2.INVALID_ARGUMENT, message or "invalid request", detail)


async def abort_precondition(
    context: grpc.aio.ServicerContext[Any, Any], kind: str, message: str, subject: str = ""
) -> NoReturn:
    detail = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type=kind, subject=subject, description=message
            )
        ]
    )
    await _abort(context, code_pb2.FAILED_PRECONDITION, message, detail)


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], code: int, message: str, detail: Any
) -> NoReturn:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=code, message=message, details=[packed])
    await context.abort_with_status(rpc_status.to_status(status))  # type: ignore[attr-defined]
    raise AssertionError("unreachable")


def field_errors(error: grpc.aio.AioRpcError) -> FieldErrors:
    """The field violations an INVALID_ARGUMENT error carries (empty when none)."""
    errors: FieldErrors = {}
    for detail in _details(error):
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            for v in bad.field_violations:
                errors.setdefault(v.field, []).append(v.description)
    return errors


def precondition_kind(error: grpc.aio.AioRpcError) -> str:
    """The type of the first precondition violation ('' when none)."""
    return precondition_failure(error)[0]


def precondition_failure(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    """The type and the user-facing description of the first precondition violation."""
    for detail in _details(error):
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            if failure.violations:
                first = failure.violations[0]
                return str(first.type), str(first.description)
    return "", ""


def _details(error: grpc.aio.AioRpcError) -> list[any_pb2.Any]:
    metadata: Any = error.trailing_metadata() or ()
    for key, value in metadata:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            return list(status.details)
    return []
