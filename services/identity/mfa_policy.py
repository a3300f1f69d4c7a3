"""Which staff roles must use two-factor sign-in (an admin setting kept in identity).

A staff user of such a role without a confirmed factor may still sign in with the password, but
their sessions say `must_enrol_mfa` and the principal the gateway makes of them admits only the
enrolment calls (services.runtime.principal.MFA_ENROLMENT_ONLY), in every service. Once the
factor is confirmed the next request resolves to a normal session, and every later sign-in
takes the second step.
"""

from __future__ import annotations

import uuid

from services.runtime.db import Conn

ROLES = ("admin", "clinician", "front_desk")

# SQL: whether staff user `u` (joined as `u`) must enrol. Used by sessions.resolve too.
MUST_ENROL = """(u.id IS NOT NULL
    AND EXISTS (SELECT 1 FROM staff_mfa_required_roles r WHERE r.role = u.role)
    AND NOT EXISTS (SELECT 1 FROM mfa_totp t WHERE t.owner_kind = 'staff'
                      AND t.owner_id = u.id AND t.confirmed_at IS NOT NULL))"""


async def required_roles(conn: Conn) -> list[str]:
    rows = await conn.fetch("SELECT role FROM staff_mfa_required_roles")
    found = {r["role"] for r in rows}
    return [role for role in ROLES if role in found]


async def set_required_roles(conn: Conn, roles: set[str]) -> list[str]:
    """Replace the setting (in the caller's transaction); the roles now required."""
    await conn.execute("DELETE FROM staff_mfa_required_roles WHERE NOT (role = ANY($1))", [*roles])
    await conn.execute(
        """INSERT INTO staff_mfa_required_roles (role) SELECT unnest($1::text[])
           ON CONFLICT (role) DO NOTHING""",
        [*roles],
    )
    return [role for role in ROLES if role in roles]


async def required_for(conn: Conn, user_id: uuid.UUID) -> bool:
    """Whether the staff user's role requires a second factor (enrolled or not)."""
    found: bool = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM staff_users u JOIN staff_mfa_required_roles r
                           ON r.role = u.role WHERE u.id = $1)""",
        user_id,
    )
    return found


async def must_enrol(conn: Conn, user_id: uuid.UUID) -> bool:
    """Whether the staff user must enrol before anything else."""
    found: bool = await conn.fetchval(
        f"SELECT {MUST_ENROL} FROM staff_users u WHERE u.id = $1", user_id
    )
    return bool(found)
