"""Which staff roles may change what, as the gateway shows and refuses it.

The rules are the services' (services/scheduling/roles.py, services/forms/rpc_common.py,
services/identity/servicer.py, which refuse the rest themselves with PERMISSION_DENIED); pages
hide the forms a role may not send and answer 403 to them (staff.common.set_up_by), and API
operations declare their roles (operation.Operation.roles). A unit test holds the sets equal.
"""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from services.gateway import auth

ADMIN = frozenset({"admin"})  # staff users, two-factor policy, the audit log (identity)
PRACTICE_SETUP = frozenset({"admin"})  # providers and appointment types
AVAILABILITY = frozenset({"admin", "front_desk"})  # working hours, date overrides, time off
FORM_CATALOG = frozenset({"admin", "clinician"})  # form library, portal forms, visit forms
LABELS = {"admin": "admin", "front_desk": "front desk", "clinician": "clinician"}
TITLE = "Not allowed"  # every 403 for a role, page and API alike


def role(caller: auth.Caller) -> str:
    return auth.ROLE_NAME.get(caller.session.role, "")


def may(caller: auth.Caller, roles: Collection[str]) -> bool:
    return role(caller) in roles


def refusal(roles: Collection[str]) -> str:
    """'Only admin staff can do this.' / 'Only admin and front desk staff can do this.'"""
    names = " and ".join(LABELS[r] for r in sorted(roles))
    return f"Only {names} staff can do this."


def forbidden(roles: Collection[str]) -> web.HTTPForbidden:
    """The 403 page for a role that may not: the same title and words everywhere."""
    return web.HTTPForbidden(reason=TITLE, text=refusal(roles))
