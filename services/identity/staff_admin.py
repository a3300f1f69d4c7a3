"""Staff lifecycle in the database: disable, role, temporary and chosen passwords, sessions."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

from services.identity.staff import COLUMNS
from services.runtime.db import Conn


async def get(conn: Conn, user_id: uuid.UUID, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM staff_users WHERE id = $1{' FOR UPDATE' if lock else ''}", user_id
    )


async def update(
    conn: Conn, user_id: uuid.UUID, *, disabled: bool | None, role: str | None
) -> asyncpg.Record | None:
    """Disable/enable and change the role; a disabled user's sessions end in the same
    transaction (resolve refuses them at once anyway)."""
    row = await conn.fetchrow(
        f"""UPDATE staff_users SET disabled = coalesce($2, disabled), role = coalesce($3, role)
            WHERE id = $1 RETURNING {COLUMNS}""",
        user_id,
        disabled,
        role,
    )
    if row is not None and disabled:
        await revoke_sessions(conn, user_id)
    return row


async def count_active_admins(conn: Conn) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM staff_users WHERE role = 'admin' AND NOT disabled"
    )
    return count


async def set_temporary_password(
    conn: Conn, user_id: uuid.UUID, password_hash: str, lifetime: timedelta
) -> asyncpg.Record | None:
    """An admin-issued password to change at the next sign-in; unlocks; ends the sessions."""
    row = await conn.fetchrow(
        f"""UPDATE staff_users SET password_hash = $2, must_change_password = true,
               temporary_expires_at = now() + $3::interval, failed_attempts = 0, lockouts = 0,
               locked_until = NULL, password_changed_at = now()
            WHERE id = $1 RETURNING {COLUMNS}""",
        user_id,
        password_hash,
        lifetime,
    )
    if row is not None:
        await revoke_sessions(conn, user_id)
    return row


async def set_chosen_password(conn: Conn, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute(
        """UPDATE staff_users SET password_hash = $2, must_change_password = false,
               temporary_expires_at = NULL, password_changed_at = now()
           WHERE id = $1""",
        user_id,
        password_hash,
    )


async def revoke_sessions(conn: Conn, user_id: uuid.UUID) -> int:
    done = await conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE staff_user_id = $1 AND revoked_at IS NULL",
        user_id,
    )
    return int(done.split()[-1])


async def live_sessions(conn: Conn, user_id: uuid.UUID | None) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT s.id, s.staff_user_id, u.username, s.created_at, s.last_seen_at, s.expires_at,
                  s.address, s.user_agent
           FROM sessions s JOIN staff_users u ON u.id = s.staff_user_id
           WHERE s.kind = 'staff' AND s.revoked_at IS NULL AND s.expires_at > now()
             AND ($1::uuid IS NULL OR s.staff_user_id = $1)
           ORDER BY s.last_seen_at DESC LIMIT 500""",
        user_id,
    )


async def revoke_session(
    conn: Conn, session_id: uuid.UUID, owner: uuid.UUID | None = None
) -> uuid.UUID | None:
    """End one staff session (of `owner` only, when given); the staff user's id, or None when
    there was no such live one."""
    ended: uuid.UUID | None = await conn.fetchval(
        """UPDATE sessions SET revoked_at = now()
           WHERE id = $1 AND kind = 'staff' AND revoked_at IS NULL
             AND ($2::uuid IS NULL OR staff_user_id = $2)
           RETURNING staff_user_id""",
        session_id,
        owner,
    )
    return ended
