"""The principal a call is made for, signed by the gateway and checked by every service.

The gateway authenticates the browser or API client with identity and then sends the resulting
principal in gRPC metadata as a short-lived JWT signed with its Ed25519 key (EdDSA, with the key
id in the `kid` header). Services hold only public keys (services.runtime.principal_keys), so no
service can mint a principal; they verify it on every call (`@requires`) and never trust a
patient id from a request when the principal names the patient.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Concatenate, Literal, Protocol, TypeVar, cast

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import Message

from services.runtime import request_text
from services.runtime.errors import abort_invalid
from services.runtime.principal_keys import SigningKey

METADATA_KEY = "x-portal-principal"
_ALGORITHM = "EdDSA"  # the only one accepted: an HS256 token is refused whatever its key
_AUDIENCE = "portal-services"
DEFAULT_TTL = 120
# Signed and verified tokens are kept (per process) so a busy caller signs and verifies each
# principal about once a minute instead of on every call; bounded, emptied when full.
CACHE_LIMIT = 10_000
TEXT_REFUSED = "The request holds text that is not allowed."
NOT_ALLOWED = "Your role does not allow this."  # PERMISSION_DENIED: the kind or role refused

Kind = Literal["staff", "patient", "service"]

# The role of a staff or patient principal whose password must change first: admitted only where a
# handler says so (@requires(password_change=True)).
PASSWORD_CHANGE_ONLY = "password-change-only"  # noqa: S105 (a role name)
# The role of a staff principal whose role requires two-factor sign-in they have not set up yet:
# admitted only where a handler says so (@requires(mfa_enrolment=True)), i.e. to enrol.
MFA_ENROLMENT_ONLY = "mfa-enrolment-only"


class InvalidPrincipal(Exception):
    """The principal is missing, expired, forged or malformed."""


@dataclass(frozen=True)
class Principal:
    kind: Kind
    subject: str  # staff user id, patient id, or the calling service's name
    role: str = ""  # staff: admin, clinician or front_desk
    realm: str = ""  # patient: onsite or offsite
    session_id: str = ""
    source: str = ""  # the end user's address as the gateway saw it, for the audit log
    name: str = ""  # staff display name or username, for the audit log; never patient data

    @property
    def is_patient(self) -> bool:
        return self.kind == "patient"


class PrincipalSigner:
    """The gateway's half: signs principals with its private key."""

    def __init__(self, key: SigningKey, *, ttl: int = DEFAULT_TTL) -> None:
        self._key = key
        self._ttl = ttl
        # principal -> (reuse until, token): a token is reused for the first half of its life,
        # so every token sent still has at least ttl/2 seconds to live. Safe to share: the
        # claims are the principal's own, and the gateway resolves the session before it asks.
        self._signed: dict[Principal, tuple[float, str]] = {}

    @property
    def kid(self) -> str:
        return self._key.kid

    def encode(self, principal: Principal) -> str:
        now = time.time()
        found = self._signed.get(principal)
        if found is not None and now < found[0]:
            return found[1]
        token = self._sign(principal, int(now))
        if len(self._signed) >= CACHE_LIMIT:
            self._signed.clear()
        self._signed[principal] = (now + self._ttl / 2, token)
        return token

    def _sign(self, principal: Principal, now: int) -> str:
        claims: dict[str, Any] = {k: v for k, v in asdict(principal).items() if v}
        claims.update(iat=now, exp=now + self._ttl, aud=_AUDIENCE)
        return jwt.encode(
            claims, self._key.private, algorithm=_ALGORITHM, headers={"kid": self._key.kid}
        )

    def metadata(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        return ((METADATA_KEY, self.encode(principal)),)


class PrincipalVerifier:
    """The services' half: checks principals against the public keys they trust, by key id."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        if not keys:
            raise ValueError("at least one public key is needed to verify principals")
        self._keys = dict(keys)
        # token -> (exp, principal) of tokens that passed every check: a token's validity
        # depends only on its text, the (fixed) keys and the clock, so a hit checks exp alone.
        self._verified: dict[str, tuple[int, Principal]] = {}

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def decode(self, token: str) -> Principal:
        found = self._verified.get(token)
        if found is not None and time.time() < found[0]:
            return found[1]
        principal, expires = self._verify(token)
        if len(self._verified) >= CACHE_LIMIT:
            self._verified.clear()
        self._verified[token] = (expires, principal)
        return principal

    def _verify(self, token: str) -> tuple[Principal, int]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise InvalidPrincipal(str(exc)) from None
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidPrincipal("signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                options={"require": ["exp", "iat", "aud", "kind", "subject"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidPrincipal(str(exc)) from None
        if claims["kind"] not in ("staff", "patient", "service"):
            raise InvalidPrincipal("unknown principal kind")
        fields = {f: str(claims.get(f, "")) for f in Principal.__dataclass_fields__}
        return Principal(**fields), int(claims["exp"])  # type: ignore[arg-type]


# The principal of the call being handled, for code far from the handler (the audit log).
current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "portal_principal", default=None
)


class HasVerifier(Protocol):
    principals: PrincipalVerifier


S = TypeVar("S", bound=HasVerifier)
Req = TypeVar("Req")
# What the method returns: a coroutine of the reply, or (server streaming) an async iterator
# of replies, which the OpenTelemetry server interceptor insists on for streams.
R = TypeVar("R")
Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[S, Req, Context], R]
Checked = Callable[Concatenate[S, Req, Context, Principal, ...], R]


def requires(
    *,
    staff: Collection[str] | bool = False,
    patient: bool = False,
    service: bool = False,
    password_change: bool = False,
    mfa_enrolment: bool = False,
) -> Callable[[Checked[S, Req, R]], Handler[S, Req, R]]:
    """Decorate a servicer method: verify the principal, check its kind and role, pass it on.

    The request's strings are NFC-normalised in place and checked against the text rule
    (services.runtime.request_text) after the principal, so no handler sees control characters.

    staff=True admits every staff role; staff={"admin"} only those roles. patient=True admits
    signed-in patients; password_change=True also those who must change their password first;
    mfa_enrolment=True also staff who must set up two-factor sign-in first.
    A server-streaming method is an async generator; it is checked before its first reply.
    """

    async def admit(self: HasVerifier, request: object, context: Context) -> Principal:
        token = dict(context.invocation_metadata() or ()).get(METADATA_KEY)
        if not isinstance(token, str):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no principal")
            raise AssertionError("unreachable")
        try:
            principal = self.principals.decode(token)
        except InvalidPrincipal:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid principal")
            raise AssertionError("unreachable") from None
        if not _admitted(principal, staff, patient, service, password_change, mfa_enrolment):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, NOT_ALLOWED)
        # The text rule for every string of every request, before any handler sees it.
        if isinstance(request, Message):
            refused = request_text.check(request)
            if refused:
                await abort_invalid(context, refused, TEXT_REFUSED)
        current.set(principal)
        return principal

    def decorate(method: Checked[S, Req, R]) -> Handler[S, Req, R]:
        wrapper: Any
        if inspect.isasyncgenfunction(method):

            @functools.wraps(method)
            async def streamed(self: S, request: Req, context: Context) -> AsyncIterator[Any]:
                principal = await admit(self, request, context)
                async for reply in cast(
                    AsyncIterator[Any], method(self, request, context, principal)
                ):
                    yield reply

            wrapper = streamed
        else:

            @functools.wraps(method)
            async def checked(self: S, request: Req, context: Context) -> Any:
                principal = await admit(self, request, context)
                return await cast(Awaitable[Any], method(self, request, context, principal))

            wrapper = checked
        wrapper.__portal_requires__ = True
        # Who a pending principal may reach, for the test that lists every such RPC.
        wrapper.__portal_pending__ = frozenset(
            name
            for name, on in (("password_change", password_change), ("mfa_enrolment", mfa_enrolment))
            if on
        )
        return cast(Handler[S, Req, R], wrapper)

    return decorate


def _admitted(
    principal: Principal,
    staff: Collection[str] | bool,
    patient: bool,
    service: bool,
    password_change: bool,
    mfa_enrolment: bool,
) -> bool:
    if principal.kind == "staff":
        if principal.role == PASSWORD_CHANGE_ONLY:
            return password_change
        if principal.role == MFA_ENROLMENT_ONLY:
            return mfa_enrolment
        return staff is True or (not isinstance(staff, bool) and principal.role in staff)
    if principal.kind == "patient":
        if principal.role == PASSWORD_CHANGE_ONLY:
            return password_change
        return patient
    return service
