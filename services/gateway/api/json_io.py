"""Reading JSON requests and writing JSON and problem+json answers for the API.

Handlers declare the members a body may have (`Member`), and `read_body` returns a `Body` or
raises `Problem`: malformed JSON, a body that is not an object, unknown members and members of
the wrong JSON type are all 400 with a message per member under `errors`. `endpoint` turns a
`Problem` raised anywhere in a handler, and the gRPC errors that carry structured details
(INVALID_ARGUMENT field violations, FAILED_PRECONDITION types), into problem+json; other gRPC
errors go on to the gateway's error middleware.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from services.gateway.security import Problem
from services.runtime.errors import FieldErrors, field_errors, precondition_kind

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
JSON_TYPES = ("application/json", "application/merge-patch+json")

# What a 409 says for each FAILED_PRECONDITION type identity reports (the type is `code`).
CONFLICTS: dict[str, tuple[str, str]] = {
    "DUPLICATE_PATIENT": (
        "A patient with this name and date of birth already exists",
        "Check that this is a different person, then send confirm_duplicate: true.",
    ),
    "ACCOUNT_EXISTS": (
        "The patient already has portal credentials in this realm",
        "Reset the credentials instead of creating them again.",
    ),
    "PORTAL_NOT_ALLOWED": (
        "The patient is not allowed to use the patient portal",
        "Set allow_patient_portal to true first.",
    ),
    "NO_ACCOUNT": (
        "The patient has no portal account in this realm",
        "Create credentials for this realm first.",
    ),
    "TEMPORARY_PASSWORD_EXPIRED": (
        "The temporary password has expired",
        "Your temporary password has expired. Please ask the clinic for a new one.",
    ),
}


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Not signed in", detail, headers={"WWW-Authenticate": "Bearer"})


def invalid(errors: FieldErrors, detail: str = "Some fields are not valid.") -> Problem:
    return Problem(400, "Invalid request", detail, errors=errors)


def from_rpc(exc: grpc.aio.AioRpcError) -> Problem | None:
    """The problem for a backend error that carries details (None: leave it to the middleware)."""
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return invalid(field_errors(exc), exc.details() or "Some fields are not valid.")
    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
        code = precondition_kind(exc)
        title, detail = CONFLICTS.get(code, ("Not possible now", exc.details() or ""))
        return Problem(409, title, detail, code=code)
    return None


def endpoint(handler: Handler) -> Handler:
    """Answer a handler's `Problem`s (and detailed backend errors) with problem+json."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Problem as problem:
            return problem.response()
        except grpc.aio.AioRpcError as exc:
            mapped = from_rpc(exc)
            if mapped is None:
                raise
            return mapped.response()

    return wrapped


# --- Request bodies -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A member a JSON object may carry: its JSON type and whether it must be there."""

    kind: type[str] | type[bool]
    required: bool = False
    max_length: int = 10_000


TYPE_NAMES = {str: "a string", bool: "true or false"}


class Body:
    """A validated JSON object: every present member has its declared type."""

    def __init__(self, values: dict[str, object]) -> None:
        self._values = values

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def keys(self) -> list[str]:
        return list(self._values)

    def text(self, name: str, default: str = "") -> str:
        value = self._values.get(name, default)
        assert isinstance(value, str)
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self._values.get(name, default)
        assert isinstance(value, bool)
        return value


async def read_body(
    request: web.Request, members: Mapping[str, Member], *, optional: bool = False
) -> Body:
    """The request's JSON object checked against `members` (an empty body is {} if `optional`)."""
    raw = await request.read()
    if not raw.strip():
        if optional:
            return _check({}, members)
        raise invalid({}, "The request needs a JSON object body.")
    if request.content_type not in JSON_TYPES:
        raise Problem(415, "Unsupported media type", "Send the body as application/json.")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid({}, "The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise invalid({}, "The body must be a JSON object.")
    return _check(data, members)


def _check(data: dict[str, Any], members: Mapping[str, Member]) -> Body:
    errors: FieldErrors = {}
    for name, value in data.items():
        member = members.get(name)
        if member is None:
            errors[name] = ["Unknown field."]
        elif not isinstance(value, member.kind):
            errors[name] = [f"Must be {TYPE_NAMES[member.kind]}."]
        elif isinstance(value, str) and len(value) > member.max_length:
            errors[name] = [f"Must be at most {member.max_length} characters."]
    for name, member in members.items():
        if member.required and name not in data:
            errors[name] = ["This field is required."]
    if errors:
        raise invalid(errors)
    return Body(data)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise invalid({name: [f"Must be a whole number from {low} to {high}."]})
    return value


# --- Answers ------------------------------------------------------------------------------------


def timestamp(value: Timestamp) -> str | None:
    """RFC 3339 in UTC, or None when the field is not set."""
    if value.seconds == 0 and value.nanos == 0:
        return None
    return value.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers=headers)
