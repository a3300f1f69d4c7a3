"""Password checks with lockout, shared by staff users and portal accounts.

After 5 consecutive failures an account locks for 1 minute, doubling with each further lock up
to 15 minutes; while locked even the right password fails. Every outcome costs one argon2
verification, so timing tells an attacker nothing. Rows come with the database's `db_now`, so
lock expiry is judged by one clock.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import asyncpg

from services.identity.passwords import PasswordHasher
from services.runtime.db import Conn

FAILURES_BEFORE_LOCK = 5
TABLES = ("staff_users", "portal_accounts")
# The SET clause that a successful sign-in applies (sessions.start_after_sign_in).
RESET = "failed_attempts = 0, lockouts = 0, locked_until = NULL"


class Outcome(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # it was locked already
    LOCKED_NOW = "locked_now"  # this failure locked it


async def verify(hasher: PasswordHasher, row: asyncpg.Record | None, password: str) -> Outcome:
    """OK, WRONG or LOCKED; an unknown user (None) costs the same and is WRONG."""
    if row is None:
        await hasher.burn(password)
        return Outcome.WRONG
    if row["locked_until"] is not None and row["locked_until"] > row["db_now"]:
        await hasher.burn(password)
        return Outcome.LOCKED
    if await hasher.verify(row["password_hash"], password):
        return Outcome.OK
    return Outcome.WRONG


async def record_failure(
    conn: Conn, table: str, row_id: uuid.UUID
) -> tuple[Outcome, int, datetime | None]:
    """Count a wrong password; the fifth in a row locks. Returns (outcome, failures, until)."""
    assert table in TABLES
    # One statement, so concurrent failures are all counted.
    updated = await conn.fetchrow(
        f"""UPDATE {table} SET
              failed_attempts = CASE WHEN failed_attempts + 1 >= $2 THEN 0
                                     ELSE failed_attempts + 1 END,
              lockouts = CASE WHEN failed_attempts + 1 >= $2 THEN lockouts + 1 ELSE lockouts END,
              locked_until = CASE WHEN failed_attempts + 1 >= $2
                  THEN now() + least(interval '1 minute' * power(2, lockouts),
                                     interval '15 minutes')
                  ELSE locked_until END
            WHERE id = $1
            RETURNING failed_attempts, locked_until, locked_until > now() AS locked""",
        row_id,
        FAILURES_BEFORE_LOCK,
    )
    assert updated is not None
    if updated["locked"]:
        return Outcome.LOCKED_NOW, FAILURES_BEFORE_LOCK, updated["locked_until"]
    return Outcome.WRONG, updated["failed_attempts"], None


async def rehash_if_needed(
    conn: Conn, hasher: PasswordHasher, table: str, row_id: uuid.UUID, stored: str, password: str
) -> None:
    """After a successful sign-in: upgrade the hash when the parameters changed."""
    assert table in TABLES
    if hasher.needs_rehash(stored):
        await conn.execute(
            f"UPDATE {table} SET password_hash = $2 WHERE id = $1",
            row_id,
            await hasher.hash(password),
        )
