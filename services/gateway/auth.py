"""Who is calling: staff and patient sessions from cookies or Bearer tokens, as principals.

identity owns sessions; the gateway only carries the opaque token (HttpOnly cookie for pages,
Bearer for the API), asks identity to resolve it on each request, and turns the answer into a
signed principal for the backends. Patients whose password must change get a principal that
every service admits only to the change-password call.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway.backends import GATEWAY, Backends
from services.gateway.context import BACKENDS, LOGIN_LIMITER, SETTINGS
from services.runtime import text
from services.runtime.principal import MFA_ENROLMENT_ONLY, PASSWORD_CHANGE_ONLY, Principal

REALMS = ("onsite", "offsite")
REALM_ENUM = {"onsite": pb.REALM_ONSITE, "offsite": pb.REALM_OFFSITE}
REALM_NAME = {v: k for k, v in REALM_ENUM.items()}
ROLE_NAME = {
    pb.STAFF_ROLE_ADMIN: "admin",
    pb.STAFF_ROLE_CLINICIAN: "clinician",
    pb.STAFF_ROLE_FRONT_DESK: "front_desk",
}
ROLE_ENUM = {v: k for k, v in ROLE_NAME.items()}
STAFF_COOKIE = "portal_staff"
# A device that signed in before (its own failure budget in identity: OWASP "device cookie").
# Set only by a sign-in page's answer and sent back only to that sign-in page (its Path).
STAFF_DEVICE_COOKIE = "portal_staff_device"
STAFF_LOGIN_PATH = "/staff/login"
DEVICE_COOKIE_AGE = 180 * 24 * 3600
# Over HTTPS session cookies carry this prefix: browsers then insist on Secure, Path=/ and no
# Domain, so neither plain http nor a sibling subdomain can plant or shadow a session.
HOST_PREFIX = "__Host-"
INVALID_SIGN_IN = "Invalid username or password."
# The sign-in pages' other answers, the same for staff and patients.
TOO_MANY_SIGN_INS = "Too many sign-in attempts. Please wait a minute, then try again."
MFA_REFUSED = (
    "That code is not correct, or it was used already. If this keeps happening, sign in again."
)
MFA_TOO_MANY = "Too many wrong codes. Please wait a few minutes, then sign in again."
# Every way identity can refuse a sign-in; pages and API give them all one generic answer.
SIGN_IN_REFUSED = (
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
)


def patient_cookie(realm: str) -> str:
    return f"portal_{realm}"


def patient_device_cookie(realm: str) -> str:
    return f"portal_{realm}_device"


def patient_login_path(realm: str) -> str:
    return f"/portal/{realm}/login"


@dataclass(frozen=True)
class Caller:
    """A resolved session and the principal to call backends with."""

    session: pb.Session
    principal: Principal
    token: str

    @property
    def must_change_password(self) -> bool:
        return bool(self.session.must_change_password)

    @property
    def must_enrol_mfa(self) -> bool:
        """Staff whose role requires two-factor sign-in they have not set up (identity says);
        a pending password change comes first."""
        return bool(self.session.must_enrol_mfa) and not self.must_change_password


def client_address(request: web.Request) -> str:
    """The browser's address: the peer, or what trusted proxies say in X-Forwarded-For."""
    return forwarded_client(
        request.remote or "",
        request.headers.getall("X-Forwarded-For", []),
        request.app[SETTINGS].trusted_proxies,
    )


def user_agent(request: web.Request) -> str:
    """The client's User-Agent as identity may keep it (see services.runtime.text.scrub);
    identity bounds its length. Never logged."""
    return text.scrub(request.headers.get("User-Agent", ""))


def forwarded_client(
    peer: str, forwarded_for: list[str], trusted: tuple[IPv4Network | IPv6Network, ...]
) -> str:
    """Walk X-Forwarded-For from the right while the hop is a trusted proxy.

    Only addresses added by our own proxies are believed; anything a client wrote itself sits
    further left and is never reached unless every hop after it is trusted.
    """
    current = peer
    hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
    while _trusted(current, trusted) and hops:
        candidate = hops.pop()
        try:
            ip_address(candidate)
        except ValueError:
            break  # a malformed hop: keep the last address we could trust
        current = candidate
    return current


def _trusted(address: str, trusted: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def gateway_metadata(request: web.Request) -> tuple[tuple[str, str], ...]:
    """Metadata for calls the gateway makes itself (sign-in, session lookups)."""
    backends = request.app[BACKENDS]
    return backends.auth(
        Principal(kind="service", subject=GATEWAY.subject, source=client_address(request))
    )


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def resolve(
    request: web.Request, token: str, *, with_own_profile: bool = False
) -> pb.Session | None:
    """The live session (with the patient's own audited record when asked), or None.

    Without the own record, a session identity resolved lately may come from the gateway's
    cache (services.gateway.session_cache); the own record is always identity's fresh, audited
    read. Refusals are never cached.
    """
    backends: Backends = request.app[BACKENDS]
    cache = backends.sessions
    if not with_own_profile:
        cached = cache.get(token)
        if cached is not None:
            return cached
    generation = cache.generation  # before asking: a flush meanwhile keeps the answer out
    try:
        session: pb.Session = await backends.identity.ResolveSession(
            pb.ResolveSessionRequest(token=token, touch=True, with_own_profile=with_own_profile),
            metadata=gateway_metadata(request),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return None
        raise
    if not with_own_profile:
        cache.put(token, session, generation)
    return session


def principal_for(request: web.Request, session: pb.Session) -> Principal:
    source = client_address(request)
    if session.kind == pb.SESSION_KIND_STAFF:
        role = ROLE_NAME.get(session.role, "")
        if session.must_change_password:
            role = PASSWORD_CHANGE_ONLY
        elif session.must_enrol_mfa:
            role = MFA_ENROLMENT_ONLY  # every service admits only the enrolment calls
        return Principal(
            kind="staff",
            subject=session.staff_user_id,
            role=role,
            session_id=session.session_id,
            source=source,
            name=session.display_name or session.username,
        )
    return Principal(
        kind="patient",
        subject=session.patient_id,
        realm=REALM_NAME.get(session.realm, ""),
        role=PASSWORD_CHANGE_ONLY if session.must_change_password else "",
        session_id=session.session_id,
        source=source,
    )


async def caller(
    request: web.Request, token: str | None, *, with_own_profile: bool = False
) -> Caller | None:
    if not token:
        return None
    session = await resolve(request, token, with_own_profile=with_own_profile)
    if session is None:
        return None
    return Caller(session, principal_for(request, session), token)


async def staff_caller(request: web.Request) -> Caller | None:
    """The signed-in staff member (cookie for pages, Bearer for the API), or None."""
    token = bearer_token(request) if request.path.startswith("/api/") else None
    token = token or session_cookie(request, STAFF_COOKIE)
    found = await caller(request, token)
    if found is None or found.session.kind != pb.SESSION_KIND_STAFF:
        return None
    return found


async def patient_caller(
    request: web.Request, realm: str | None, *, with_own_profile: bool = False
) -> Caller | None:
    """The signed-in patient of `realm` (None: any realm, API only), or None.

    with_own_profile: the session also carries the patient's own record (read and audited by
    identity in the same call) unless the password must change first.
    """
    if request.path.startswith("/api/"):
        token = bearer_token(request)
    else:
        token = session_cookie(request, patient_cookie(realm or ""))
    found = await caller(request, token, with_own_profile=with_own_profile)
    if found is None or found.session.kind != pb.SESSION_KIND_PATIENT:
        return None
    if realm is not None and REALM_NAME.get(found.session.realm) != realm:
        return None  # one realm's session never opens the other
    return found


async def sign_in_retry_after(request: web.Request) -> int | None:
    """Count a sign-in attempt from this client; the seconds to wait when over the limit."""
    return await request.app[LOGIN_LIMITER].retry_after(
        request.app[BACKENDS].identity, client_address(request), gateway_metadata(request)
    )


async def end_session(request: web.Request, token: str) -> None:
    """End a session; one that already ended is what signing out wants anyway.

    Like every identity call that changes sessions, this flushes the gateway's session cache
    (backends.FlushSessions), so the token is refused here at once.
    """
    try:
        await request.app[BACKENDS].identity.EndSession(
            pb.EndSessionRequest(token=token), metadata=gateway_metadata(request)
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND):
            raise


def metadata(request: web.Request, who: Caller) -> tuple[tuple[str, str], ...]:
    return request.app[BACKENDS].auth(who.principal)


def cookie_name(request: web.Request, base: str) -> str:
    """`base` as the browser knows it: `__Host-base` when cookies are Secure."""
    return HOST_PREFIX + base if request.app[SETTINGS].cookie_secure else base


def session_cookie(request: web.Request, base: str) -> str | None:
    return request.cookies.get(cookie_name(request, base))


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, name: str, token: str, path: str = "/"
) -> None:
    """Set session cookie `name` (a base name); `path` applies over plain http only, since a
    `__Host-` cookie must be Path=/ (the names differ per realm, so realms stay apart)."""
    secure = request.app[SETTINGS].cookie_secure
    response.set_cookie(
        cookie_name(request, name),
        token,
        httponly=True,
        samesite="Strict",
        secure=secure,
        path="/" if secure else path,
    )


def clear_session_cookie(response: web.StreamResponse, name: str, path: str = "/") -> None:
    """Expire both forms of the cookie (the caller need not know which one the browser has)."""
    response.del_cookie(name, path=path)
    response.del_cookie(HOST_PREFIX + name, path="/", secure=True)


def set_device_cookie(
    request: web.Request,
    response: web.StreamResponse,
    token: str,
    *,
    name: str = STAFF_DEVICE_COOKIE,
    path: str = STAFF_LOGIN_PATH,
) -> None:
    """Remember this device for sign-in (identity issued `token`; empty: keep the one sent).

    Only the sign-in pages call this, and the cookie's Path is their own, so no other page or
    API answer sets it and browsers send it nowhere else.
    """
    if token:
        response.set_cookie(
            name,
            token,
            max_age=DEVICE_COOKIE_AGE,
            httponly=True,
            samesite="Strict",
            secure=request.app[SETTINGS].cookie_secure,
            path=path,
        )
