"""Session resolution and the patient's own audited read, as single statements on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from importlib import resources

import asyncpg
import pytest

from services.identity import profile, sessions
from services.runtime import db
from services.runtime.principal import Principal

IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=8)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    await db.migrate(
        conn,
        db.runtime_migrations()
        + db.load_migrations("identity", resources.files("services.identity") / "migrations"),
    )
    yield conn
    await conn.close()


async def patient_account(
    conn: asyncpg.Connection, *, portal: bool = True, must_change: bool = False
) -> tuple[uuid.UUID, uuid.UUID]:
    """(patient id, onsite account id)."""
    patient_id, account_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        """INSERT INTO patients (id, first_name, last_name, date_of_birth, sex,
                                 allow_patient_portal)
           VALUES ($1, 'Ada', 'Lovelace', '1985-12-10', 'female', $2)""",
        patient_id,
        portal,
    )
    await conn.execute(
        """INSERT INTO portal_accounts (id, patient_id, realm, username, password_hash,
                                        must_change_password)
           VALUES ($1, $2, 'onsite', $3, 'x', $4)""",
        account_id,
        patient_id,
        f"ada-{account_id.hex[:8]}",
        must_change,
    )
    return patient_id, account_id


async def last_seen_age(conn: asyncpg.Connection, session_id: uuid.UUID) -> timedelta:
    age: timedelta = await conn.fetchval(
        "SELECT now() - last_seen_at FROM sessions WHERE id = $1", session_id
    )
    return age


async def seen_ago(conn: asyncpg.Connection, session_id: uuid.UUID, ago: timedelta) -> None:
    await conn.execute(
        "UPDATE sessions SET last_seen_at = now() - $2::interval WHERE id = $1", session_id, ago
    )


async def test_resolve_touches_at_most_once_per_interval(conn: asyncpg.Connection) -> None:
    patient_id, account_id = await patient_account(conn)
    token, session_id, _ = await sessions.create(conn, lifetime=LIFETIME, account_id=account_id)

    await seen_ago(conn, session_id, timedelta(minutes=5))
    row = await sessions.resolve(conn, token, idle=IDLE, touch=False)
    assert row is not None and row["patient_id"] == patient_id
    assert await last_seen_age(conn, session_id) >= timedelta(minutes=5)  # not touched

    row = await sessions.resolve(conn, token, idle=IDLE, touch=True)
    assert row is not None
    assert await last_seen_age(conn, session_id) < sessions.TOUCH_INTERVAL  # touched

    # Within the interval the row is left alone (no write per request).
    recent = sessions.TOUCH_INTERVAL / 3
    await seen_ago(conn, session_id, recent)
    assert await sessions.resolve(conn, token, idle=IDLE, touch=True) is not None
    assert await last_seen_age(conn, session_id) >= recent


async def test_idle_revoked_and_withdrawn_sessions_end_at_once(conn: asyncpg.Connection) -> None:
    patient_id, account_id = await patient_account(conn)
    idle_token, idle_id, _ = await sessions.create(conn, lifetime=LIFETIME, account_id=account_id)
    await seen_ago(conn, idle_id, IDLE + timedelta(seconds=1))
    assert await sessions.resolve(conn, idle_token, idle=IDLE, touch=True) is None
    # An idle session is not revived by the attempt.
    assert await last_seen_age(conn, idle_id) > IDLE

    token, _, _ = await sessions.create(conn, lifetime=LIFETIME, account_id=account_id)
    assert await sessions.resolve(conn, token, idle=IDLE, touch=True) is not None
    await sessions.revoke_token(conn, token)
    assert await sessions.resolve(conn, token, idle=IDLE, touch=True) is None

    token, _, _ = await sessions.create(conn, lifetime=LIFETIME, account_id=account_id)
    await conn.execute("UPDATE patients SET allow_patient_portal = false WHERE id = $1", patient_id)
    assert await sessions.resolve(conn, token, idle=IDLE, touch=True) is None


async def audit_rows(conn: asyncpg.Connection, patient_id: uuid.UUID) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT actor_kind, actor_id, action, source_address FROM audit_log WHERE patient_id = $1",
        patient_id,
    )


def patient_principal(patient_id: uuid.UUID, realm: str = "onsite") -> Principal:
    return Principal(kind="patient", subject=str(patient_id), realm=realm, source="203.0.113.7")


async def test_own_read_is_audited_in_the_same_statement(conn: asyncpg.Connection) -> None:
    patient_id, _ = await patient_account(conn)
    row = await profile.read_own(conn, patient_principal(patient_id), patient_id)
    assert row is not None
    assert row["first_name"] == "Ada" and row["account"]["realm"] == "onsite"
    assert [tuple(r) for r in await audit_rows(conn, patient_id)] == [
        ("patient", str(patient_id), profile.ACTION, "203.0.113.7")
    ]
    await profile.read_own(conn, patient_principal(patient_id), patient_id)
    assert len(await audit_rows(conn, patient_id)) == 2  # every read


async def test_no_audit_when_nothing_is_returned(conn: asyncpg.Connection) -> None:
    pending, _ = await patient_account(conn, must_change=True)
    row = await profile.read_own(conn, patient_principal(pending), pending)
    assert row is not None and row["account"]["must_change_password"]
    assert await audit_rows(conn, pending) == []  # the servicer refuses it: nothing was read

    no_account = uuid.uuid4()
    assert await profile.read_own(conn, patient_principal(no_account), no_account) is None
    other_realm, _ = await patient_account(conn)
    assert (
        await profile.read_own(conn, patient_principal(other_realm, "offsite"), other_realm) is None
    )
    assert await audit_rows(conn, other_realm) == []
