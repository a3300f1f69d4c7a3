"""Declared operations: what each /api/v1 handler accepts and answers, checked and documented.

An `Operation` names its method and path, who may call it (`security`), its query and body
models, and every answer it gives. `route()` turns it into an aiohttp route that checks all of
that before the handler runs (the handler gets a typed `Call`), and openapi.py generates the
document from the same declarations, so the two cannot drift. Statuses that follow from the
declaration (401 for a session, 400/415 for a body, 404 for a patient id, 429 for sign-ins,
503 for a backend) are added by `statuses()`; the handler declares only its own (409, ...).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import grpc
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from services.gateway import auth, staff_roles
from services.gateway.api import access
from services.gateway.api.json_io import from_rpc, invalid, validation_problem
from services.gateway.security import Problem

Security = Literal["staff", "patient", "pending-patient", "none"]
JSON_TYPES = ("application/json", "application/merge-patch+json")
MULTIPART = "multipart/form-data"
B = TypeVar("B", bound=BaseModel | None)
Q = TypeVar("Q", bound=BaseModel | None)


@dataclass(frozen=True)
class Header:
    """A response header, documented."""

    description: str
    required: bool = False
    format: str = ""


@dataclass(frozen=True)
class Answer:
    """A successful answer: its status, and its body model (None: no body)."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    headers: Mapping[str, Header] = field(default_factory=dict)
    # A body that is not JSON (a file): its possible media types, documented as binary.
    media_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reply:
    """What a handler returns: one of its declared answers."""

    body: BaseModel | None = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: web.Response | None = None  # a declared non-JSON answer (Answer.media_types)

    def response(self) -> web.Response:
        if self.raw is not None:
            return self.raw
        if self.body is None:
            return web.Response(status=self.status, headers=self.headers)
        data = type(self.body).__pydantic_serializer__.to_json(self.body)
        return web.Response(
            body=data, status=self.status, content_type="application/json", headers=self.headers
        )


@dataclass(frozen=True)
class Call(Generic[B, Q]):
    """A checked request: the caller (for secured operations), the body and the query."""

    request: web.Request
    who: auth.Caller | None
    body: B
    query: Q

    @property
    def caller(self) -> auth.Caller:
        """The signed-in caller of a secured operation."""
        if self.who is None:
            raise RuntimeError("this operation is declared without security")
        return self.who

    @property
    def params(self) -> Mapping[str, str]:
        return self.request.match_info


Handler = Callable[[Call[Any, Any]], Awaitable[Reply]]
PATIENT_ID = "patient_id"  # a path parameter: a UUID, else 404


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # aiohttp syntax: {name} or {name:regex}
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    security: Security
    answers: tuple[Answer, ...]
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    # Request headers, documented as parameters (by alias); the handler reads and checks them.
    headers: type[BaseModel] | None = None
    problems: tuple[int, ...] = ()  # statuses of the handler's own beyond statuses()
    rate_limited: bool = False
    backend: bool = True
    description: str = ""
    # Patient operations that read the caller's own record: identity returns it (read and
    # audited) with the session, saving a round trip (see auth.patient_caller).
    own_profile: bool = False
    # A multipart/form-data body (an upload) as well as, or instead of, the JSON `body`: the
    # model of its fields, and its size limit in bytes (the app's 1 MiB holds for the rest).
    upload: type[BaseModel] | None = None
    upload_limit: int = 0
    # Staff operations open to staff whose password must change first, or who must set up
    # two-factor sign-in first (every other staff operation answers them 403).
    password_change: bool = False
    mfa_enrolment: bool = False
    # Staff operations only these roles may call (empty: every role); others get 403
    # ROLE_NOT_ALLOWED, as the service behind would refuse them.
    roles: frozenset[str] = frozenset()

    def statuses(self) -> list[int]:
        """Every error status this operation can answer with."""
        found = set(self.problems)
        if self.security != "none":
            found |= {401, 403}  # 403: a role identity refuses, or a password change pending
        if self.security == "pending-patient":
            found.discard(403)
        if self.body is not None:
            found |= {400, 415}
        if self.upload is not None:
            found |= {400, 413, 415}
        if self.query is not None:
            found.add(400)
        if "{" in self.path:
            found.add(404)  # a patient id that is no UUID, a realm that does not exist
        if self.rate_limited:
            found.add(429)
        if self.backend:
            found.add(503)
        return sorted(found)

    def route(self) -> web.RouteDef:
        if self.method == "GET":
            return web.get(self.path, self._handle, allow_head=False)
        return web.route(self.method, self.path, self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if self.rate_limited:
                await access.sign_in_allowed(request)
            who = await self._caller(request)
            if PATIENT_ID in request.match_info:
                _uuid_or_404(request.match_info[PATIENT_ID], "patient")
            query = _query(request, self.query) if self.query is not None else None
            body: BaseModel | None = None
            if self.upload is not None and request.content_type == MULTIPART:
                body = await _upload(request, self.upload, self.upload_limit)
            elif self.body is not None:
                body = await self._body(request, self.body)
            elif self.upload is not None:
                raise Problem(415, "Unsupported media type", f"Send the body as {MULTIPART}.")
            reply = await self.handler(Call(request, who, body, query))
        except Problem as problem:
            return problem.response()
        except grpc.aio.AioRpcError as exc:
            mapped = from_rpc(exc)
            if mapped is None:
                raise  # the error middleware answers the rest (503 when a backend is down)
            return mapped.response()
        return reply.response()

    async def _caller(self, request: web.Request) -> auth.Caller | None:
        if self.security == "staff":
            found = await access.staff(
                request, password_change=self.password_change, mfa_enrolment=self.mfa_enrolment
            )
            if self.roles and not staff_roles.may(found, self.roles):
                raise Problem(
                    403, "Not allowed", staff_roles.refusal(self.roles), code="ROLE_NOT_ALLOWED"
                )
            return found
        if self.security in ("patient", "pending-patient"):
            return await access.patient(
                request,
                allow_pending=self.security != "patient",
                with_own_profile=self.own_profile,
            )
        return None

    async def _body(self, request: web.Request, model: type[BaseModel]) -> BaseModel:
        raw = await request.read()
        if not raw.strip():
            if self.body_required:
                raise invalid({}, "The request needs a JSON object body.")
            raw = b"{}"
        elif request.content_type not in JSON_TYPES:
            also = f" or {MULTIPART}" if self.upload is not None else ""
            raise Problem(
                415, "Unsupported media type", f"Send the body as application/json{also}."
            )
        try:
            # Python's parser, not pydantic's: it keeps a lone surrogate, so the text rule can
            # refuse it naming the field instead of calling the whole body malformed.
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise invalid({}, "The body is not valid JSON.") from None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise validation_problem(exc) from None


async def _upload(request: web.Request, model: type[BaseModel], limit: int) -> BaseModel:
    """A multipart/form-data body as `model`: text fields as text, file fields as bytes.

    The body may be `limit` bytes here (the app's 1 MiB limit holds everywhere else); aiohttp
    spools files to disk while it reads.
    """
    try:
        form = await request.clone(client_max_size=limit).post()
    except web.HTTPRequestEntityTooLarge:
        raise Problem(
            413,
            "Request too large",
            f"The body is larger than {limit // 1024**2} MiB; nothing was stored.",
        ) from None
    except (ValueError, RuntimeError, TypeError, AssertionError, HttpProcessingError):
        # aiohttp's multipart parser refuses a malformed body with one of these (a part with
        # no headers: InvalidHeader, an HttpProcessingError).
        raise invalid({}, "The body is not valid multipart/form-data.") from None
    values: dict[str, object] = {}
    for name, value in form.items():
        if name in values:
            raise invalid({name: ["Send this field once."]})
        if isinstance(value, web.FileField):
            values[name] = await asyncio.to_thread(value.file.read)
        else:
            values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def _query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    values = {name: request.query[name] for name in request.query}
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def not_found(what: str) -> Problem:
    return Problem(404, "Not found", f"No such {what}.")


def _uuid_or_404(raw: str, what: str) -> str:
    """An id from the URL; one that cannot name anything is not found, like an unknown one."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise not_found(what) from None


def path_id(call: Call[Any, Any], name: str, what: str) -> str:
    return _uuid_or_404(call.params[name], what)


def patient_id(call: Call[Any, Any]) -> str:
    return path_id(call, PATIENT_ID, "patient")
