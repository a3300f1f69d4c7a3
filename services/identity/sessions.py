"""Sessions of staff and patients: random 256-bit tokens, stored only as SHA-256 hashes.

A session ends when revoked, after `idle` without use, at its absolute expiry, and (patients)
as soon as portal access is withdrawn or the account's password is reset.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

import asyncpg

from services.identity import audit, lockout, mfa_policy
from services.runtime.db import Conn

# Don't write last_seen_at on every request: once per interval is precise enough.
TOUCH_INTERVAL = timedelta(seconds=15)
# A session keeps the client's User-Agent only this long: enough to tell browsers apart.
USER_AGENT_MAX = 256


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def create(
    conn: Conn,
    *,
    lifetime: timedelta,
    staff_user_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
    address: str = "",
    user_agent: str = "",
) -> tuple[str, uuid.UUID, datetime]:
    """A new session; returns (token, session id, absolute expiry)."""
    token = secrets.token_urlsafe(32)
    session_id = uuid.uuid4()
    expires_at = await conn.fetchval(
        """INSERT INTO sessions (id, token_hash, kind, staff_user_id, account_id, expires_at,
                                 address, user_agent)
           VALUES ($1, $2, $3, $4, $5, now() + $6::interval, $7, $8) RETURNING expires_at""",
        session_id,
        token_hash(token),
        "staff" if staff_user_id else "patient",
        staff_user_id,
        account_id,
        lifetime,
        address,
        user_agent[:USER_AGENT_MAX],
    )
    return token, session_id, expires_at


async def start_after_sign_in(
    conn: Conn,
    *,
    table: str,
    row_id: uuid.UUID,
    lifetime: timedelta,
    entry: audit.Entry,
    trusted_device: bool = False,
    user_agent: str = "",
) -> tuple[str, uuid.UUID, datetime]:
    """One statement after a right password: clear the failure count, log, open a session.

    Sign-in is argon2-bound; everything else is kept to a single round trip. A sign-in from a
    trusted device leaves the shared count alone: it only cleared that device's own budget.
    """
    assert table in lockout.OWNERS
    staff = table == "staff_users"
    reset = "id = id" if trusted_device else lockout.RESET
    token = secrets.token_urlsafe(32)
    session_id = uuid.uuid4()
    last_sign_in = "" if staff else ", last_sign_in_at = now()"
    expires_at: datetime = await conn.fetchval(
        f"""WITH reset AS (
                UPDATE {table} SET {reset}{last_sign_in} WHERE id = $1
            ), logged AS (
                INSERT INTO audit_log ({audit.INSERT_COLUMNS})
                VALUES ($6, $7, $8, $9, $10, $11, $12, $13)
            )
            INSERT INTO sessions (id, token_hash, kind, staff_user_id, account_id, expires_at,
                                  address, user_agent)
            VALUES ($2, $3, $4, $5, $14, now() + $15::interval, $16, $17)
            RETURNING expires_at""",
        row_id,
        session_id,
        token_hash(token),
        "staff" if staff else "patient",
        row_id if staff else None,
        *entry.values(),
        None if staff else row_id,
        lifetime,
        entry.source,
        user_agent[:USER_AGENT_MAX],
    )
    return token, session_id, expires_at


async def resolve(conn: Conn, token: str, *, idle: timedelta, touch: bool) -> asyncpg.Record | None:
    """The live session for `token` with its staff user or account and patient, or None.

    One statement: with `touch`, last_seen_at moves forward too, at most once per
    TOUCH_INTERVAL (the row returned is the one found, before the touch).
    """
    row: asyncpg.Record | None = await conn.fetchrow(
        f"""WITH live AS (
               SELECT s.id, s.kind, s.staff_user_id, s.account_id, s.last_seen_at,
                      least(s.expires_at, s.last_seen_at + $2::interval) AS ends_at,
                      u.username AS staff_username, u.display_name, u.role,
                      a.realm, a.username AS account_username,
                      coalesce(u.must_change_password, a.must_change_password)
                          AS must_change_password,
                      a.patient_id,
                      {mfa_policy.MUST_ENROL} AS must_enrol_mfa
               FROM sessions s
               LEFT JOIN staff_users u ON u.id = s.staff_user_id
               LEFT JOIN portal_accounts a ON a.id = s.account_id
               LEFT JOIN patients p ON p.id = a.patient_id
               WHERE s.token_hash = $1 AND s.revoked_at IS NULL
                 AND s.expires_at > now() AND s.last_seen_at > now() - $2::interval
                 AND (s.kind = 'staff' AND NOT u.disabled
                      OR s.kind = 'patient' AND p.allow_patient_portal)
           ), touched AS (
               UPDATE sessions SET last_seen_at = now()
               FROM live
               WHERE $3 AND sessions.id = live.id
                 AND sessions.last_seen_at < now() - $4::interval
           )
           SELECT * FROM live""",
        token_hash(token),
        idle,
        touch,
        TOUCH_INTERVAL,
    )
    return row


async def user_agent(conn: Conn, session_id: str) -> str:
    """The User-Agent session `session_id` began with ("" when unknown)."""
    try:
        found = uuid.UUID(session_id)
    except ValueError:
        return ""
    agent: str | None = await conn.fetchval("SELECT user_agent FROM sessions WHERE id = $1", found)
    return agent or ""


async def revoke_token(conn: Conn, token: str) -> uuid.UUID | None:
    revoked: uuid.UUID | None = await conn.fetchval(
        """UPDATE sessions SET revoked_at = now()
           WHERE token_hash = $1 AND revoked_at IS NULL RETURNING id""",
        token_hash(token),
    )
    return revoked


async def revoke_account(conn: Conn, account_id: uuid.UUID) -> int:
    done = await conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL",
        account_id,
    )
    return int(done.split()[-1])


async def revoke_patient(conn: Conn, patient_id: uuid.UUID) -> int:
    done = await conn.execute(
        """UPDATE sessions SET revoked_at = now()
           WHERE revoked_at IS NULL
             AND account_id IN (SELECT id FROM portal_accounts WHERE patient_id = $1)""",
        patient_id,
    )
    return int(done.split()[-1])
