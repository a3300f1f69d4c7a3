"""Password checks with lockout, shared by staff users and portal accounts.

Policy: each guess is counted *before* the password is verified, in one statement, so a burst
of parallel guesses cannot slip past the lock: at most 5 guesses are verified, the fifth locks
(1 minute, doubling with each further lock up to 15 minutes), and while locked even the right
password fails. A right password clears the count it was charged to.

The count is charged to one of two budgets (OWASP "device cookie"): a device that signed in to
this user before presents its cookie and spends its own budget; every other client spends the
user's shared budget. So an attacker elsewhere can lock only the shared budget, never the
device the user already uses. Every outcome costs one argon2 verification, so timing tells an
attacker nothing.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from services.identity.passwords import PasswordHasher
from services.runtime.db import Conn

FAILURES_BEFORE_LOCK = 5
TABLES = ("staff_users", "portal_accounts", "trusted_devices")
OWNERS = {"staff_users": "staff_user_id", "portal_accounts": "account_id"}
# The SET clause that a successful sign-in (or an admin's unlock) applies.
RESET = "failed_attempts = 0, lockouts = 0, locked_until = NULL"
DEVICE_LIFETIME = timedelta(days=180)


class Outcome(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # it was locked already
    LOCKED_NOW = "locked_now"  # this failure locked it


@dataclass(frozen=True)
class Budget:
    """Where a guess is charged: (table, row id); a trusted device or the user's own row."""

    table: str
    row_id: uuid.UUID


@dataclass(frozen=True)
class Claim:
    allowed: bool  # False: locked, the password is not even looked at
    locks: bool  # this guess locked the budget (if it turns out wrong, say LOCKED_NOW)
    failures: int  # consecutive failures counting this guess
    locked_until: datetime | None


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _checked(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"no lockout on {table}")
    return table


async def budget(conn: Conn, table: str, row_id: uuid.UUID, device_token: str) -> Budget:
    """The device's budget when `device_token` is a live cookie of this user, else the user's."""
    if device_token:
        device_id = await conn.fetchval(
            f"""SELECT id FROM trusted_devices
                WHERE token_hash = $1 AND {OWNERS[_checked(table)]} = $2 AND expires_at > now()""",
            token_hash(device_token),
            row_id,
        )
        if device_id is not None:
            return Budget("trusted_devices", device_id)
    return Budget(table, row_id)


async def claim(conn: Conn, spent: Budget) -> Claim:
    """Count one guess against `spent` unless it is locked; one statement, so parallel guesses
    queue on the row lock and each sees the count the one before it left."""
    table = _checked(spent.table)
    row = await conn.fetchrow(
        f"""WITH old AS (
                SELECT locked_until IS NOT NULL AND locked_until > now() AS locked
                FROM {table} WHERE id = $1 FOR UPDATE
            )
            UPDATE {table} t SET
              failed_attempts = CASE WHEN old.locked THEN t.failed_attempts
                                     WHEN t.failed_attempts + 1 >= $2 THEN 0
                                     ELSE t.failed_attempts + 1 END,
              lockouts = CASE WHEN NOT old.locked AND t.failed_attempts + 1 >= $2
                              THEN t.lockouts + 1 ELSE t.lockouts END,
              locked_until = CASE WHEN NOT old.locked AND t.failed_attempts + 1 >= $2
                  THEN now() + least(interval '1 minute' * power(2, t.lockouts),
                                     interval '15 minutes')
                  ELSE t.locked_until END
            FROM old WHERE t.id = $1
            RETURNING NOT old.locked AS allowed,
                      NOT old.locked AND t.locked_until > now() AS locks,
                      t.failed_attempts, t.locked_until""",
        spent.row_id,
        FAILURES_BEFORE_LOCK,
    )
    if row is None:
        return Claim(allowed=False, locks=False, failures=0, locked_until=None)
    failures = FAILURES_BEFORE_LOCK if row["locks"] else row["failed_attempts"]
    return Claim(row["allowed"], row["locks"], failures, row["locked_until"])


async def clear(conn: Conn, spent: Budget) -> None:
    """A right password: the guesses charged to this budget are forgiven."""
    await conn.execute(f"UPDATE {_checked(spent.table)} SET {RESET} WHERE id = $1", spent.row_id)


async def check(
    conn: Conn,
    hasher: PasswordHasher,
    row: asyncpg.Record | None,
    spent: Budget | None,
    password: str,
) -> tuple[Outcome, Claim | None]:
    """Charge the guess, then verify: OK, WRONG, LOCKED or LOCKED_NOW; an unknown user (None)
    costs the same and is WRONG."""
    if row is None or spent is None:
        await hasher.burn(password)
        return Outcome.WRONG, None
    charged = await claim(conn, spent)
    if not charged.allowed:
        await hasher.burn(password)
        return Outcome.LOCKED, charged
    if await hasher.verify(row["password_hash"], password):
        await clear(conn, spent)
        return Outcome.OK, charged
    return (Outcome.LOCKED_NOW if charged.locks else Outcome.WRONG), charged


async def trust_device(conn: Conn, table: str, row_id: uuid.UUID) -> str:
    """A new device cookie value for a device that just signed in as this user."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        f"""INSERT INTO trusted_devices (id, token_hash, {OWNERS[_checked(table)]}, expires_at)
            VALUES ($1, $2, $3, now() + $4::interval)""",
        uuid.uuid4(),
        token_hash(token),
        row_id,
        DEVICE_LIFETIME,
    )
    return token


async def unlock(conn: Conn, table: str, row_id: uuid.UUID) -> None:
    """An admin's unlock: the user's shared budget and every device of theirs start afresh."""
    await conn.execute(f"UPDATE {_checked(table)} SET {RESET} WHERE id = $1", row_id)
    await conn.execute(
        f"UPDATE trusted_devices SET {RESET} WHERE {OWNERS[_checked(table)]} = $1", row_id
    )


async def rehash_if_needed(
    conn: Conn, hasher: PasswordHasher, table: str, row_id: uuid.UUID, stored: str, password: str
) -> None:
    """After a successful sign-in: upgrade the hash when the parameters changed."""
    if hasher.needs_rehash(stored):
        await conn.execute(
            f"UPDATE {_checked(table)} SET password_hash = $2 WHERE id = $1",
            row_id,
            await hasher.hash(password),
        )
