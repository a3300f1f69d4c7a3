"""Portal accounts: one per patient and realm, with staff-issued or temporary passwords."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

from services.identity.usernames import check_username, generate_username, normalize_username
from services.runtime.db import Conn

COLUMNS = """id, patient_id, realm, username, password_hash, must_change_password,
    temporary_expires_at, failed_attempts, lockouts, locked_until, created_at,
    password_changed_at, last_sign_in_at"""


class UsernameTaken(Exception):
    pass


async def by_patient(conn: Conn, patient_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {COLUMNS}, EXISTS (
                SELECT 1 FROM mfa_totp t WHERE t.owner_kind = 'patient'
                   AND t.owner_id = portal_accounts.id AND t.confirmed_at IS NOT NULL
            ) AS mfa_enrolled
            FROM portal_accounts WHERE patient_id = $1 ORDER BY realm""",
        patient_id,
    )


async def get(conn: Conn, patient_id: uuid.UUID, realm: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {COLUMNS} FROM portal_accounts WHERE patient_id = $1 AND realm = $2",
        patient_id,
        realm,
    )


async def for_sign_in(conn: Conn, realm: str, username: str) -> asyncpg.Record | None:
    """The account with what sign-in needs: portal access and the database's clock."""
    return await conn.fetchrow(
        f"""SELECT {", ".join("a." + c.strip() for c in COLUMNS.split(","))},
                   p.allow_patient_portal, now() AS db_now
            FROM portal_accounts a JOIN patients p ON p.id = a.patient_id
            WHERE lower(a.username) = $1 AND a.realm = $2""",
        normalize_username(username),
        realm,
    )


async def username_taken(conn: Conn, username: str) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM portal_accounts WHERE lower(username) = $1)
               OR EXISTS (SELECT 1 FROM staff_users WHERE lower(username) = $1)""",
            normalize_username(username),
        )
    )


async def suggest_username(conn: Conn, first_name: str, last_name: str) -> str:
    """A readable username nobody has yet (the unique index still guards the insert)."""
    for _ in range(10):
        candidate = generate_username(first_name, last_name)
        if not await username_taken(conn, candidate):
            return candidate
    raise RuntimeError("could not find a free username")


def username_problems(username: str) -> list[str]:
    return check_username(normalize_username(username))


async def create(
    conn: Conn,
    *,
    patient_id: uuid.UUID,
    realm: str,
    username: str,
    password_hash: str,
    temporary_lifetime: timedelta,
) -> asyncpg.Record:
    """Insert the account with a staff-issued password the patient must change."""
    try:
        async with (
            conn.transaction()
        ):  # a savepoint: a clash leaves the caller's transaction usable
            row = await conn.fetchrow(
                f"""INSERT INTO portal_accounts
                        (id, patient_id, realm, username, password_hash, must_change_password,
                         temporary_expires_at)
                    VALUES ($1, $2, $3, $4, $5, true, now() + $6::interval)
                    RETURNING {COLUMNS}""",
                uuid.uuid4(),
                patient_id,
                realm,
                normalize_username(username),
                password_hash,
                temporary_lifetime,
            )
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "portal_accounts_username":
            raise UsernameTaken(username) from None
        raise
    assert row is not None
    return row


async def set_temporary_password(
    conn: Conn, account_id: uuid.UUID, password_hash: str, lifetime: timedelta
) -> asyncpg.Record:
    """A staff-issued password the patient must change before `lifetime` ends; unlocks."""
    row = await conn.fetchrow(
        f"""UPDATE portal_accounts SET password_hash = $2, must_change_password = true,
               temporary_expires_at = now() + $3::interval, failed_attempts = 0, lockouts = 0,
               locked_until = NULL, password_changed_at = now()
           WHERE id = $1 RETURNING {COLUMNS}""",
        account_id,
        password_hash,
        lifetime,
    )
    assert row is not None
    return row


async def set_chosen_password(
    conn: Conn, account_id: uuid.UUID, password_hash: str
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""UPDATE portal_accounts SET password_hash = $2, must_change_password = false,
               temporary_expires_at = NULL, password_changed_at = now()
           WHERE id = $1 RETURNING {COLUMNS}""",
        account_id,
        password_hash,
    )
    assert row is not None
    return row
