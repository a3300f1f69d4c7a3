"""Security headers, CSRF protection and error pages for every response.

CSRF uses a signed double-submit token: a random HttpOnly cookie, and in every form the HMAC of
that cookie's value under the gateway's key. Bearer-token API calls carry no ambient
credentials and need no token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping

import aiohttp_jinja2
import grpc
from aiohttp import web

from services.gateway.backends import BackendUnavailable
from services.runtime.errors import FieldErrors, field_errors

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
CSRF_COOKIE = "portal_csrf"
CSRF_FIELD = "csrf_token"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CSRF_KEY = web.AppKey("csrf_key", bytes)
COOKIE_SECURE = web.AppKey("cookie_secure", bool)
# The CSRF seed this request set as a cookie (the browser sends it back from the next request).
CSRF_SEED = web.RequestKey("csrf_seed", str)
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts of the domain are not ours


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        # Raised redirects and errors are responses too: they get the same headers.
        _add_security_headers(request, exc)
        raise
    _add_security_headers(request, response)
    return response


def _add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.app[COOKIE_SECURE]:
        # Served over HTTPS (Secure cookies): browsers must never fall back to plain http.
        headers.setdefault("Strict-Transport-Security", HSTS)
    if not request.path.startswith("/static/"):
        # Pages carry PHI or credentials: never cache them anywhere.
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"


def csrf_cookie(request: web.Request) -> str:
    """The CSRF cookie's name: `__Host-` prefixed when cookies are Secure (as sessions are)."""
    return f"__Host-{CSRF_COOKIE}" if request.app[COOKIE_SECURE] else CSRF_COOKIE


def csrf_token(request: web.Request) -> str:
    """The token forms must send back; sets the cookie on first use."""
    seed = request.cookies.get(csrf_cookie(request)) or request.get(CSRF_SEED)
    if not seed:
        seed = secrets.token_urlsafe(32)
        request[CSRF_SEED] = seed
    return hmac.new(request.app[CSRF_KEY], seed.encode(), hashlib.sha256).hexdigest()


class LazyCsrfToken:
    """The CSRF token for templates, made only when a template writes it: a page without a
    form, an API answer or a static file then sets no CSRF cookie (templates' context is built
    for every request)."""

    def __init__(self, request: web.Request) -> None:
        self._request = request

    def __str__(self) -> str:
        return csrf_token(self._request)

    def __html__(self) -> str:
        return str(self)  # hex digits: nothing to escape


@web.middleware
async def csrf_protect(request: web.Request, handler: Handler) -> web.StreamResponse:
    # No route (404) or no such method (405): no handler runs, so there is nothing to protect.
    routed = request.match_info.http_exception is None
    if routed and request.method not in ("GET", "HEAD", "OPTIONS") and not wants_json(request):
        form = await request.post()
        sent = form.get(CSRF_FIELD)
        seed = request.cookies.get(csrf_cookie(request))
        expected = (
            hmac.new(request.app[CSRF_KEY], seed.encode(), hashlib.sha256).hexdigest()
            if seed
            else ""
        )
        if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
            raise web.HTTPForbidden(reason="The form expired or was sent from elsewhere.")
    response = await handler(request)
    seed = request.get(CSRF_SEED)
    if seed and not response.prepared:
        response.set_cookie(
            csrf_cookie(request),
            seed,
            httponly=True,
            samesite="Strict",
            secure=request.app[COOKIE_SECURE],
            path="/",
        )
    return response


GRPC_TO_HTTP = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "Invalid request"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "Not signed in"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "Not allowed"),
    grpc.StatusCode.NOT_FOUND: (404, "Not found"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "Already exists"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "Not possible now"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "Too many requests"),
    grpc.StatusCode.UNAVAILABLE: (503, "Service temporarily unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (503, "Service temporarily unavailable"),
}


# How long a client should wait before trying a service that did not answer.
OUTAGE_RETRY_AFTER = "5"
OUTAGE_DETAIL = "The rest of the portal keeps working; please try again in a few seconds."

PROBLEM_TYPE = "application/problem+json"
# Headers an error response keeps when the error page or problem replaces its body.
KEPT_HEADERS = ("Retry-After", "WWW-Authenticate", "Allow")


class Problem(Exception):
    """An RFC 9457 problem the handler answers with (`code` is our machine-readable reason)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        errors: FieldErrors | None = None,
        code: str = "",
        service: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors
        self.code = code
        self.service = service  # the backend that did not answer, for SERVICE_UNAVAILABLE
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body: dict[str, object] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
        }
        if self.code:
            body["code"] = self.code
        if self.service:
            body["service"] = self.service
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        return web.json_response(
            body, status=self.status, content_type=PROBLEM_TYPE, headers=self.headers
        )


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/")


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a clean page or problem+json; never a stack trace."""
    code = service = ""
    try:
        return await handler(request)
    except BackendUnavailable as exc:
        # One backend is down: say which, and let the client retry; nothing else is affected.
        log.warning("backend unavailable", extra={"service": exc.service, "code": exc.code().name})
        status, title, detail, errors = 503, exc.message, OUTAGE_DETAIL, None
        code, service = "SERVICE_UNAVAILABLE", exc.service
        headers = {"Retry-After": OUTAGE_RETRY_AFTER}
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/problem+json":
            raise  # redirects, and problems a handler already wrote
        default_text = f"{exc.status}: {exc.reason}"
        status, title, errors = exc.status, exc.reason, None
        headers = {k: exc.headers[k] for k in KEPT_HEADERS if k in exc.headers}
        detail = "" if exc.text in (None, default_text) else (exc.text or "")
    except grpc.aio.AioRpcError as exc:
        status, title = GRPC_TO_HTTP.get(exc.code(), (500, "Something went wrong"))
        detail = exc.details() or "" if status < 500 else ""
        errors = field_errors(exc) or None
        headers = {}
        if status >= 500:
            log.warning("backend call failed", extra={"code": exc.code().name})
    except Exception as exc:
        log.exception("unhandled error", extra={"error": type(exc).__name__})
        status, title, detail, errors, headers = 500, "Something went wrong", "", None, {}
    detail = "" if detail == title else detail
    if wants_json(request):
        return Problem(
            status, title, detail, errors=errors, code=code, service=service, headers=headers
        ).response()
    response = aiohttp_jinja2.render_template(
        "error.html", request, {"status": status, "title": title, "detail": detail}, status=status
    )
    response.headers.update(headers)
    return response
