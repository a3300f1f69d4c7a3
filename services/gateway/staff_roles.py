"""Which staff roles may change the practice's set-up, as the gateway shows and refuses it.

The rule is scheduling's (services/scheduling/roles.py, which refuses the rest itself with
PERMISSION_DENIED); pages hide the forms a role may not send and answer 403 to them, and API
operations declare their roles (operation.Operation.roles). A unit test holds the two equal.
"""

from __future__ import annotations

from collections.abc import Collection

from services.gateway import auth

PRACTICE_SETUP = frozenset({"admin"})  # providers and appointment types
AVAILABILITY = frozenset({"admin", "front_desk"})  # working hours, date overrides, time off
LABELS = {"admin": "admin", "front_desk": "front desk", "clinician": "clinician"}


def role(caller: auth.Caller) -> str:
    return auth.ROLE_NAME.get(caller.session.role, "")


def may(caller: auth.Caller, roles: Collection[str]) -> bool:
    return role(caller) in roles


def refusal(roles: Collection[str]) -> str:
    """'Only admin staff can do this.' / 'Only admin or front desk staff can do this.'"""
    names = " or ".join(LABELS[r] for r in sorted(roles))
    return f"Only {names} staff can do this."
