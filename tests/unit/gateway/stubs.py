"""An in-process gateway over a stub identity: answers and gRPC errors chosen by each test.

The errors carry their details exactly as a service sends them: they are built with the
service-side helpers of services/runtime/errors.py and read back by the gateway's own code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, cast

import grpc

from portal.identity.v1 import identity_pb2 as pb
from services.gateway.backends import Backends
from services.gateway.session_cache import SessionCache
from services.runtime.errors import FieldErrors, abort_invalid, abort_precondition
from services.runtime.principal import Principal
from tests.conftest import principal_signer

STAFF_TOKEN = "staff-token"
PATIENT_TOKEN = "patient-token"
PENDING_TOKEN = "pending-token"
PATIENT_ID = "0b6f5a3c-3f64-4d3e-9a51-5a7f1a0b2c3d"

SESSIONS = {
    STAFF_TOKEN: pb.Session(
        session_id="s1",
        kind=pb.SESSION_KIND_STAFF,
        staff_user_id="7d1f0e52-6a53-4f7c-9d61-2b8f0c4a9e10",
        role=pb.STAFF_ROLE_ADMIN,
        username="admin",
        display_name="Admin",
    ),
    PATIENT_TOKEN: pb.Session(
        session_id="s2",
        kind=pb.SESSION_KIND_PATIENT,
        patient_id=PATIENT_ID,
        realm=pb.REALM_ONSITE,
        username="ada",
    ),
    PENDING_TOKEN: pb.Session(
        session_id="s3",
        kind=pb.SESSION_KIND_PATIENT,
        patient_id=PATIENT_ID,
        realm=pb.REALM_ONSITE,
        username="ada",
        must_change_password=True,
    ),
}


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


class _Aborted(Exception):
    pass


class _Context:
    """Captures what a servicer aborts with, as grpc.aio would send it."""

    status: Any = None

    async def abort_with_status(self, status: Any) -> None:
        self.status = status
        raise _Aborted


async def _captured(abort: Callable[[Any], Any]) -> grpc.aio.AioRpcError:
    context = _Context()
    with contextlib.suppress(_Aborted):
        await abort(context)
    status = context.status
    return grpc.aio.AioRpcError(
        status.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        status.details,
        None,
    )


async def invalid_argument(errors: FieldErrors) -> grpc.aio.AioRpcError:
    return await _captured(lambda context: abort_invalid(context, errors))


async def failed_precondition(kind: str, description: str) -> grpc.aio.AioRpcError:
    return await _captured(lambda context: abort_precondition(context, kind, description))


class Identity:
    """identity's stub: `replies[name]` is a message, an exception or a function of the request."""

    def __init__(self) -> None:
        self.replies: dict[str, Any] = {
            "ResolveSession": self._resolve,
            "CheckSignInRate": self._rate,
        }
        self.calls: list[tuple[str, Any]] = []
        self.attempts: dict[str, int] = {}  # sign-in attempts per address (one endless window)

    def _rate(self, request: pb.CheckSignInRateRequest) -> pb.SignInRate:
        count = self.attempts[request.address] = self.attempts.get(request.address, 0) + 1
        if count <= request.limit:
            return pb.SignInRate(allowed=True)
        return pb.SignInRate(allowed=False, retry_after_seconds=request.window_seconds)

    @staticmethod
    def _resolve(request: pb.ResolveSessionRequest) -> pb.Session:
        if request.token not in SESSIONS:
            raise rpc_error(grpc.StatusCode.UNAUTHENTICATED, "session ended")
        return SESSIONS[request.token]

    def __getattr__(self, name: str) -> Callable[..., Any]:
        async def call(request: Any, metadata: Any = None, **_: Any) -> Any:
            self.calls.append((name, request))
            reply = self.replies[name]
            if isinstance(reply, BaseException):
                raise reply
            return reply(request) if callable(reply) else reply

        return call

    def sent(self, name: str) -> list[Any]:
        return [request for called, request in self.calls if called == name]


class StubBackends:
    def __init__(self) -> None:
        self.identity = Identity()
        self.codec = principal_signer()
        self.sessions = SessionCache(ttl=0)  # off: every request reaches the stub identity

    def auth(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        return self.codec.metadata(principal)

    async def health(self) -> dict[str, dict[str, str]]:
        return {}

    async def close(self) -> None:
        return None

    def as_backends(self) -> Backends:
        return cast(Backends, self)
