"""Staff users: creation, lookup, and the first admin of a new installation."""

from __future__ import annotations

import logging
import uuid

import asyncpg

from services.identity.passwords import PasswordHasher, check_password
from services.identity.usernames import check_username, normalize_username
from services.runtime.db import Conn
from services.runtime.errors import FieldErrors

log = logging.getLogger(__name__)
ROLES = ("admin", "clinician", "front_desk")
COLUMNS = """id, username, display_name, role, password_hash, failed_attempts, lockouts,
    CASE WHEN locked_until > now() THEN locked_until END AS locked_until, disabled,
    created_at, must_change_password, temporary_expires_at"""


def validate(username: str, display_name: str, role: str, password: str) -> FieldErrors:
    errors: FieldErrors = {}
    if problems := check_username(normalize_username(username)):
        errors["username"] = problems
    if not display_name.strip() or len(display_name) > 100:
        errors["display_name"] = ["Display name is required (at most 100 characters)."]
    if role not in ROLES:
        errors["role"] = ["Role must be admin, clinician or front desk."]
    if problems := check_password(password, username=username, email=None):
        errors["password"] = problems
    return errors


async def by_username(conn: Conn, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM staff_users WHERE lower(username) = $1",
        normalize_username(username),
    )


async def for_sign_in(conn: Conn, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {COLUMNS}, now() AS db_now FROM staff_users
            WHERE lower(username) = $1 AND NOT disabled""",
        normalize_username(username),
    )


async def create(
    conn: Conn, hasher: PasswordHasher, username: str, display_name: str, role: str, password: str
) -> asyncpg.Record | None:
    """Insert a staff user; None when the username is taken."""
    row = await conn.fetchrow(
        f"""INSERT INTO staff_users (id, username, display_name, role, password_hash)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (lower(username)) DO NOTHING RETURNING {COLUMNS}""",
        uuid.uuid4(),
        normalize_username(username),
        " ".join(display_name.split()),
        role,
        await hasher.hash(password),
    )
    return row


async def bootstrap_admin(pool: asyncpg.Pool, hasher: PasswordHasher, password: str) -> None:
    """Create staff user "admin" with `password` unless it exists (safe with many replicas)."""
    async with pool.acquire() as conn:
        if await by_username(conn, "admin") is not None:
            return
        if len(password) < 12:
            log.error("PORTAL_ADMIN_PASSWORD is shorter than 12 characters; no admin created")
            return
        if await create(conn, hasher, "admin", "Administrator", "admin", password):
            log.info("created the first admin user")
