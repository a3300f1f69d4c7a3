"""The API's problems (RFC 9457) from validation errors and from backend errors, and timestamps.

Validation errors name each field (`first_name`, or a dotted path for nested members) with its
messages under `errors`. INVALID_ARGUMENT from a backend carries the same shape; a
FAILED_PRECONDITION carries its own user-facing description and a machine-readable type, which
become the 409's `detail` and `code` (and `errors`, when it names fields). Other gRPC errors go
on to the error middleware.
"""

from __future__ import annotations

from datetime import UTC

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import ValidationError

from services.gateway.security import Problem
from services.runtime.errors import INVALID, FieldErrors, field_errors, precondition_failure

# Messages for pydantic's error types that read better beside a form field.
MESSAGES = {
    "extra_forbidden": "Unknown field.",
    "missing": "This field is required.",
    "string_type": "Must be a string.",
    "bool_type": "Must be true or false.",
    "int_type": "Must be a whole number.",
    "string_too_short": "Must not be empty.",
}
# The same for bounds and choices, filled in from the error's context.
WITH_CONTEXT = {
    "greater_than_equal": "Must be at least {ge}.",
    "less_than_equal": "Must be at most {le}.",
    "greater_than": "Must be more than {gt}.",
    "less_than": "Must be less than {lt}.",
    "literal_error": "Must be {expected}.",
}
# The same for a list's length: "Must hold at least 1 item.", "at most 50 items."
COUNTED = {"too_long": ("at most", "max_length"), "too_short": ("at least", "min_length")}
# Problems with the body as a whole (no field to name).
WHOLE_BODY = {
    "json_invalid": "The body is not valid JSON.",
    "model_type": "The body must be a JSON object.",
    "model_attributes_type": "The body must be a JSON object.",
}


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Not signed in", detail, headers={"WWW-Authenticate": "Bearer"})


def invalid(errors: FieldErrors, detail: str = INVALID) -> Problem:
    return Problem(400, "Invalid request", detail, errors=errors)


def validation_problem(exc: ValidationError) -> Problem:
    errors: FieldErrors = {}
    detail = ""
    for error in exc.errors(include_url=False, include_input=False):
        kind = error["type"]
        context = error.get("ctx") or {}
        if kind == "value_error" and "error" in context:
            message = str(context["error"])
        elif kind in WITH_CONTEXT:
            message = WITH_CONTEXT[kind].format(**context)
        elif kind in COUNTED:
            bound, key = COUNTED[kind]
            count = context[key]
            message = f"Must hold {bound} {count} item{'' if count == 1 else 's'}."
        else:
            message = MESSAGES.get(kind, error["msg"])
        if error["loc"]:
            path = ".".join(str(part) for part in error["loc"])
            errors.setdefault(path, []).append(message)
        else:
            detail = detail or WHOLE_BODY.get(kind, message)
    return invalid(errors, detail or INVALID)


def from_rpc(exc: grpc.aio.AioRpcError) -> Problem | None:
    """The problem for a backend error that carries details (None: leave it to the middleware)."""
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return invalid(field_errors(exc), exc.details() or INVALID)
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        code, description = precondition_failure(exc)
        return Problem(
            409,
            "Not possible now",
            description or exc.details() or "",
            code=code,
            errors=field_errors(exc) or None,
        )
    return None


def timestamp(value: Timestamp) -> str | None:
    """RFC 3339 in UTC, or None when the field is not set."""
    if value.seconds == 0 and value.nanos == 0:
        return None
    return value.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")
