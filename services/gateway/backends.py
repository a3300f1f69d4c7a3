"""The gateway's gRPC clients of identity, forms and scheduling, and their health.

Each backend's channel names its outages: a call that ends UNAVAILABLE or DEADLINE_EXCEEDED
raises `BackendUnavailable` carrying the backend's name, so the error pages can say which
service is down and pages can leave out only the sections that need it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from portal.forms.v1 import forms_pb2_grpc
from portal.identity.v1 import identity_pb2_grpc
from portal.scheduling.v1 import scheduling_pb2_grpc
from services.gateway.session_cache import SessionCache
from services.runtime.client import open_channel
from services.runtime.principal import Principal, PrincipalSigner
from services.runtime.principal_keys import SigningKey

log = logging.getLogger(__name__)
T = TypeVar("T")

# The health name each backend reports SERVING on while it can serve requests.
SERVICE_NAMES = {
    "identity": "portal.identity.v1.IdentityService",
    "forms": "portal.forms.v1.FormsService",
    "scheduling": "portal.scheduling.v1.SchedulingService",
}

# Calls the gateway makes on its own behalf (signing in, resolving sessions).
GATEWAY = Principal(kind="service", subject="gateway")

# Calls whose answer is a PDF rendered on the way (certificates, letters, completed forms):
# embedding a CJK font takes CPU-seconds on a busy machine, past the default deadline.
PDF_DEADLINE = 30.0

# Codes that mean "the backend did not answer", as opposed to an answer that refuses.
OUTAGE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def unavailable_text(service: str) -> str:
    return f"The {service} service is unavailable right now"


class BackendUnavailable(grpc.aio.AioRpcError):
    """A backend did not answer; still an AioRpcError, so code-checking handlers keep working."""

    def __init__(self, service: str, error: grpc.aio.AioRpcError) -> None:
        super().__init__(
            error.code(),
            error.initial_metadata(),
            # Kept: field errors travel in it. A Metadata at run time, a tuple to the stubs.
            cast(grpc.aio.Metadata, error.trailing_metadata()),
            error.details(),
            error.debug_error_string(),
        )
        self.service = service

    @property
    def message(self) -> str:
        return unavailable_text(self.service)


class NameOutages(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """Turn a backend's UNAVAILABLE / DEADLINE_EXCEEDED into `BackendUnavailable(name)`."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        call = await continuation(client_call_details, request)
        try:
            return await call  # the response: grpc.aio wraps it as the caller's call
        except grpc.aio.AioRpcError as exc:
            if exc.code() in OUTAGE_CODES and not isinstance(exc, BackendUnavailable):
                raise BackendUnavailable(self.service, exc) from None
            raise


# identity calls that change nothing a session resolves to, by their name's first word. Every
# other identity call (sign-ins, staff and patient changes, passwords, MFA, sign-out …) flushes
# the gateway's session cache when it ends; a new RPC is a write unless its name says otherwise
# (tests/unit/gateway/test_session_cache.py lists today's reads, so a new one is noticed).
READ_PREFIXES = (
    "Resolve",
    "Get",
    "List",
    "Search",
    "Check",
    "Find",
    "Count",
    "Export",
    "Verify",
    "Suggest",
    "Watch",
)


def is_read(method: str) -> bool:
    """Whether the gRPC method (`/package.Service/Name` or `Name`) only reads."""
    return method.rpartition("/")[2].startswith(READ_PREFIXES)


class FlushSessions(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    """After every identity call that may change sessions, accounts or users, forget the cached
    sessions before the caller sees the answer, so this gateway's next request asks identity.
    Failed calls flush too: a call can fail after identity committed it."""

    def __init__(self, cache: SessionCache) -> None:
        self.cache = cache

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        if is_read(name):
            return await continuation(client_call_details, request)
        try:
            call = await continuation(client_call_details, request)
            return await call
        finally:
            self.cache.flush()


@dataclass(frozen=True)
class Outage:
    """What a page section shows instead of its content while its service is down."""

    service: str

    @property
    def message(self) -> str:
        return unavailable_text(self.service)


async def section(call: Awaitable[T]) -> T | Outage:
    """A page section's data, or the outage that keeps it from showing; the page still renders."""
    try:
        return await call
    except BackendUnavailable as exc:
        log.warning("section left out", extra={"service": exc.service, "code": exc.code().name})
        return Outage(exc.service)


class Backends:
    def __init__(
        self,
        addresses: dict[str, str],
        principal_key: SigningKey,
        sessions: SessionCache | None = None,
    ) -> None:
        # Sessions resolved lately (auth.resolve); disabled until identity's change stream is up.
        self.sessions = SessionCache(ttl=0) if sessions is None else sessions
        self.channels = {
            name: open_channel(address, interceptors=self._interceptors(name))
            for name, address in addresses.items()
        }
        self.identity = identity_pb2_grpc.IdentityServiceStub(self.channels["identity"])
        self.forms = forms_pb2_grpc.FormsServiceStub(self.channels["forms"])
        self.scheduling = scheduling_pb2_grpc.SchedulingServiceStub(self.channels["scheduling"])
        self.signer = PrincipalSigner(principal_key)

    def _interceptors(self, name: str) -> list[grpc.aio.ClientInterceptor]:
        found: list[Any] = [NameOutages(name)]
        if name == "identity":
            found.append(FlushSessions(self.sessions))
        return found

    def auth(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        """Metadata that carries `principal` to a backend, signed (the signer reuses a token
        for the first half of its life)."""
        return self.signer.metadata(principal)

    async def health(self) -> dict[str, dict[str, str]]:
        """Each backend's serving status and its overall status (database and broker)."""

        async def check(name: str, service: str) -> str:
            stub = health_pb2_grpc.HealthStub(self.channels[name])
            try:
                reply = await stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1.0
                )
            except grpc.aio.AioRpcError as exc:
                return str(exc.code().name)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

        async def both(name: str) -> tuple[str, dict[str, str]]:
            serving, overall = await asyncio.gather(
                check(name, SERVICE_NAMES[name]), check(name, "")
            )
            return name, {"serving": serving, "overall": overall}

        return dict(await asyncio.gather(*(both(name) for name in self.channels)))

    async def close(self) -> None:
        await asyncio.gather(*(channel.close(grace=None) for channel in self.channels.values()))
