"""Clear gRPC errors with details the gateway turns into problem+json field messages.

INVALID_ARGUMENT carries google.rpc.BadRequest field violations; FAILED_PRECONDITION carries
google.rpc.PreconditionFailure with a machine-readable type; NOT_FOUND (abort_not_found) carries
google.rpc.ResourceInfo naming the kind of resource. Nothing else leaves a service:
unexpected exceptions become INTERNAL with no details (the log has the error type).
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

FieldErrors = dict[str, list[str]]
M = TypeVar("M", bound=Message)
# Details travel base64-encoded in the trailing metadata, which gRPC caps (8 KiB soft, 16 KiB
# hard): past it the caller gets RESOURCE_EXHAUSTED instead of the refusal. A request with
# thousands of bad fields is told about the first ones and how many more there are.
DETAILS_BUDGET = 6000  # bytes of serialised violations
INVALID = "Some fields are not valid."  # the API's `detail` beside the field messages


async def abort_invalid(
    context: grpc.aio.ServicerContext[Any, Any], errors: FieldErrors, message: str = ""
) -> NoReturn:
    detail = bad_request(errors)
    await _abort(context, code_pb2.INVALID_ARGUMENT, message or INVALID, detail)


def bad_request(errors: FieldErrors) -> error_details_pb2.BadRequest:
    """The field violations detail (read back by field_errors); abort_precondition may carry it
    too, when the state a request meets is wrong in named fields."""
    violations = [
        error_details_pb2.BadRequest.FieldViolation(field=field, description=text)
        for field, texts in errors.items()
        for text in texts
    ]
    return error_details_pb2.BadRequest(field_violations=_within_budget(violations))


def _within_budget(
    violations: list[error_details_pb2.BadRequest.FieldViolation],
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    kept: list[error_details_pb2.BadRequest.FieldViolation] = []
    size = 0
    for n, violation in enumerate(violations):
        size += violation.ByteSize() + 4  # the field's tag and length
        if size > DETAILS_BUDGET:
            more = len(violations) - n
            kept.append(
                error_details_pb2.BadRequest.FieldViolation(
                    field=violation.field, description=f"And {more} more problems like these."
                )
            )
            break
        kept.append(violation)
    return kept


async def abort_not_found(context: grpc.aio.ServicerContext[Any, Any], what: str) -> NoReturn:
    """NOT_FOUND "No such <what>.", with google.rpc.ResourceInfo naming the kind (`what`), so a
    caller tells a missing patient from a missing provider without reading the message."""
    detail = error_details_pb2.ResourceInfo(resource_type=what)
    await _abort(context, code_pb2.NOT_FOUND, f"No such {what}.", detail)


async def abort_precondition(
    context: grpc.aio.ServicerContext[Any, Any],
    kind: str,
    message: str,
    subject: str = "",
    *extra: Message,
) -> NoReturn:
    """`message` is the one sentence a person reads (pages and API show it as it is)."""
    detail = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type=kind, subject=subject, description=message
            )
        ]
    )
    await _abort(context, code_pb2.FAILED_PRECONDITION, message, detail, *extra)


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], code: int, message: str, *details: Message
) -> NoReturn:
    packed = []
    for detail in details:
        packed.append(any_pb2.Any())
        packed[-1].Pack(detail)
    status = status_pb2.Status(code=code, message=message, details=packed)
    await context.abort_with_status(rpc_status.to_status(status))  # type: ignore[attr-defined]
    raise AssertionError("unreachable")


def field_errors(error: grpc.aio.AioRpcError) -> FieldErrors:
    """The field violations an INVALID_ARGUMENT (or FAILED_PRECONDITION) error carries (empty
    when none)."""
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
    failure = detail_of(error, error_details_pb2.PreconditionFailure)
    return str(failure.violations[0].type) if failure and failure.violations else ""


def precondition_text(error: grpc.aio.AioRpcError) -> str:
    """The sentence the service gave for its first precondition violation ('' when none)."""
    failure = detail_of(error, error_details_pb2.PreconditionFailure)
    return str(failure.violations[0].description) if failure and failure.violations else ""


def detail_of(error: grpc.aio.AioRpcError, kind: type[M]) -> M | None:
    """The error's first detail of message type `kind` (None when it carries none)."""
    for detail in _details(error):
        found = kind()
        if detail.Unpack(found):  # False: a detail of another type
            return found
    return None


def not_found_kind(error: grpc.aio.AioRpcError) -> str:
    """The kind of resource a NOT_FOUND names (abort_not_found; '' when it names none)."""
    if error.code() != grpc.StatusCode.NOT_FOUND:
        return ""
    info = detail_of(error, error_details_pb2.ResourceInfo)
    return str(info.resource_type) if info else ""


def precondition_failure(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    """The type and the user-facing description of the first precondition violation."""
    return precondition_kind(error), precondition_text(error)


def _details(error: grpc.aio.AioRpcError) -> list[any_pb2.Any]:
    metadata: Any = error.trailing_metadata() or ()
    for key, value in metadata:
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            status = status_pb2.Status.FromString(value)
            return list(status.details)
    return []
