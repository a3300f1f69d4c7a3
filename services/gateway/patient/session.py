"""Who is signed in to a realm, and where a patient who is not (or must change the password) goes.

A realm's pages call `signed_in`: it resolves the realm's cookie, sends a visitor without a
session to the sign-in page (saying the session ended when a cookie was there but no longer
works, without saying why), and sends a patient whose password must change to the password page.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlencode, urlsplit

import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.context import BACKENDS
from services.gateway.demographics import REALM_LABEL

# Messages a redirect may ask the next page to show: ?notice=<key>. Only these fixed texts can be
# shown, so the query string can carry nothing else onto the page.
Notice = Literal[
    "signed-out",
    "session-ended",
    "password-changed",
    "profile-update-sent",
    "refill-requested",
    "refill-withdrawn",
]
NOTICES: dict[str, tuple[str, str]] = {
    "signed-out": ("success", "You have signed out."),
    "session-ended": ("info", "Your session ended. Please sign in again."),
    "password-changed": ("success", "Your password has been changed."),
    "profile-update-sent": (
        "success",
        "Thank you. Your change request is pending review: the clinic will check it before it "
        "appears in your profile.",
    ),
    "refill-requested": ("success", "Your refill request has been sent to the clinic."),
    "refill-withdrawn": ("success", "Your refill request has been withdrawn."),
}


def realm_of(request: web.Request) -> str:
    return request.match_info["realm"]


def portal_label(realm: str) -> str:
    """The realm's portal as the patient pages name it: "Onsite portal"."""
    return f"{REALM_LABEL[realm]} portal"


def portal_base(realm: str) -> str:
    return f"/portal/{realm}/"


def cookie_name(realm: str) -> str:
    return auth.patient_cookie(realm)


def page_url(realm: str, page: str, notice: Notice | None = None) -> str:
    url = portal_base(realm) + page
    return f"{url}?notice={notice}" if notice else url


def notices(request: web.Request) -> list[dict[str, str]]:
    """The message a redirect asked this page to show (none for an unknown key)."""
    found = NOTICES.get(request.query.get("notice", ""))
    return [{"level": found[0], "text": found[1]}] if found else []


def set_cookie(request: web.Request, response: web.StreamResponse, realm: str, token: str) -> None:
    auth.set_session_cookie(request, response, cookie_name(realm), token, path=portal_base(realm))


def clear_cookie(response: web.StreamResponse, realm: str) -> None:
    auth.clear_session_cookie(response, cookie_name(realm), path=portal_base(realm))


# Pages a sign-in never returns to (home and the realm's root are where it goes anyway).
NOT_RETURNED_TO = frozenset({"", "home", "login", "login/mfa", "logout", "password"})
RETURN_LIMIT = 1000  # characters of a return address


def return_to(realm: str, address: str) -> str:
    """`address` when it is a page of this realm's portal to come back to after signing in,
    else "": a path only (no scheme, host or "//"), so a sign-in never leads off the portal."""
    parts = urlsplit(address)
    base = portal_base(realm)
    if (
        len(address) > RETURN_LIMIT
        or parts.scheme
        or parts.netloc
        or "\\" in address
        or not address.startswith(base)
        or address[len(base) :].startswith("/")
        or parts.path[len(base) :] in NOT_RETURNED_TO
    ):
        return ""
    return address


def to_login(
    realm: str, notice: Notice | None = None, *, clear: bool = False, then: str = ""
) -> web.HTTPFound:
    """To the realm's sign-in page; `then` (checked by return_to) is where it leads after."""
    query = {k: v for k, v in (("notice", notice or ""), ("next", return_to(realm, then))) if v}
    url = portal_base(realm) + "login" + (f"?{urlencode(query)}" if query else "")
    redirect = web.HTTPFound(url)
    if clear:
        clear_cookie(redirect, realm)
    return redirect


def session_ended(realm: str) -> web.HTTPFound:
    return to_login(realm, "session-ended", clear=True)


async def signed_in(request: web.Request, *, allow_pending: bool = False) -> auth.Caller:
    """The realm's signed-in patient, or a redirect (raised) to sign-in or the password page."""
    realm = realm_of(request)
    who = await auth.patient_caller(request, realm)
    if who is None:
        had_cookie = bool(auth.session_cookie(request, cookie_name(realm)))
        # A page asked for (not a form sent) is where signing in again leads.
        then = request.path_qs if request.method == "GET" else ""
        raise to_login(realm, "session-ended" if had_cookie else None, clear=had_cookie, then=then)
    if who.must_change_password and not allow_pending:
        raise web.HTTPFound(page_url(realm, "password"))
    return who


async def my_profile(request: web.Request, who: auth.Caller) -> pb.Patient:
    """The signed-in patient's own record (identity takes the patient from the principal)."""
    try:
        return await request.app[BACKENDS].identity.GetMyProfile(
            pb.GetMyProfileRequest(), metadata=auth.metadata(request, who)
        )
    except grpc.aio.AioRpcError as exc:
        realm = realm_of(request)
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise session_ended(realm) from None
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED and who.must_change_password:
            raise web.HTTPFound(page_url(realm, "password")) from None
        raise
