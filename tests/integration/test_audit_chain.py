"""Audit tables: the runtime role may only INSERT and SELECT them, and their hash chains (in
lanes) show tampering (an edited row, a deleted row, rows cut from a lane's end, a row moved to
another lane), also under concurrent appends from many connections."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources

import asyncpg
import pytest

from services.identity import audit
from services.runtime import audit_chain, db
from services.runtime.db import Conn

SERVICES = ("identity", "forms", "scheduling")
TABLE = {"identity": "audit_log", "forms": "access_log", "scheduling": "access_log"}


def migrations(service: str) -> list[db.Migration]:
    folder = resources.files(f"services.{service}") / "migrations"
    return db.runtime_migrations() + db.load_migrations(service, folder)


@dataclass
class Roles:
    owner: asyncpg.Connection  # the migrating role (a superuser in tests)
    app: asyncpg.Connection  # the service's runtime role
    app_url: str


@pytest.fixture(params=SERVICES)
async def roles(
    request: pytest.FixtureRequest, pg_server_url: str, database_url: str
) -> AsyncIterator[tuple[str, Roles]]:
    service: str = request.param
    role, password = f"t{uuid.uuid4().hex[:12]}_app", uuid.uuid4().hex
    await db.ensure_role(pg_server_url, role, password)
    owner = await asyncpg.connect(database_url)
    await db.migrate(owner, migrations(service), runtime_role=role)
    app_url = db.with_user(database_url, role, password)
    app = await asyncpg.connect(app_url)
    try:
        yield service, Roles(owner, app, app_url)
    finally:
        await app.close()
        await owner.execute(f'DROP OWNED BY "{role}"')
        await owner.close()
        server = await asyncpg.connect(pg_server_url)
        try:
            await server.execute(f'DROP ROLE "{role}"')
        finally:
            await server.close()


async def append(conn: Conn, service: str, n: int = 1) -> None:
    """n rows as the service writes them."""
    for i in range(n):
        if service == "identity":
            await audit.record(conn, None, "test.append", detail=f"row {i}")
        else:
            await conn.execute(
                "INSERT INTO access_log (actor_kind, actor_id, patient_id, action) "
                "VALUES ('staff', 'u', $1, 'test.append')",
                uuid.uuid4(),
            )


async def ids(conn: asyncpg.Connection, table: str) -> list[int]:
    return [r["id"] for r in await conn.fetch(f"SELECT id FROM {table} ORDER BY id")]


async def tamper(owner: asyncpg.Connection, table: str, sql: str, *args: object) -> None:
    """What only the owner can do: switch the append-only trigger off, change, switch it on."""
    async with owner.transaction():
        await owner.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
        await owner.execute(sql, *args)
        await owner.execute(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {t} SET action = 'forged'",
        "DELETE FROM {t}",
        "TRUNCATE {t}",
        "DROP TRIGGER {t}_append_only ON {t}",
        "DROP TRIGGER {t}_chain ON {t}",
        "ALTER TABLE {t} DISABLE TRIGGER ALL",
        "UPDATE audit_chain_heads SET last_id = 0",
        "INSERT INTO audit_chain_heads (table_name) VALUES ('x')",
        "UPDATE schema_migrations SET name = 'x'",
    ],
)
async def test_the_runtime_role_may_only_insert_and_select(
    roles: tuple[str, Roles], statement: str
) -> None:
    service, r = roles
    table = TABLE[service]
    await append(r.app, service, 2)
    assert await r.app.fetchval(f"SELECT count(*) FROM {table}") == 2
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await r.app.execute(statement.format(t=table))
    assert (await audit_chain.verify(r.app, table)).valid


async def test_the_runtime_role_keeps_normal_rights_elsewhere(roles: tuple[str, Roles]) -> None:
    _service, r = roles
    await r.app.execute("DELETE FROM outbox")
    await r.app.execute("UPDATE dead_letters SET subject = subject")
    await r.app.execute(
        "INSERT INTO outbox (id, subject, aggregate_id, event_type, payload) "
        "VALUES (gen_random_uuid(), 's', 'a', 'e', '\\x00')"
    )


async def test_an_edited_row_breaks_the_chain_there(roles: tuple[str, Roles]) -> None:
    service, r = roles
    table = TABLE[service]
    await append(r.app, service, 5)
    before = await audit_chain.verify(r.app, table)
    assert (before.valid, before.rows, before.first_broken) == (True, 5, None)
    third = (await ids(r.owner, table))[2]
    await tamper(r.owner, table, f"UPDATE {table} SET action = 'nothing.here' WHERE id = $1", third)
    after = await audit_chain.verify(r.app, table)
    assert (after.valid, after.rows, after.first_broken) == (False, 5, third)


async def test_a_recomputed_hash_still_breaks_the_next_link(roles: tuple[str, Roles]) -> None:
    service, r = roles
    table = TABLE[service]
    await append(r.app, service, 4)
    second, third = (await ids(r.owner, table))[1:3]
    await tamper(r.owner, table, f"UPDATE {table} SET action = 'forged' WHERE id = $1", second)
    # Re-hash the edited row as a forger would: its own link holds, the next one does not.
    await tamper(
        r.owner,
        table,
        f"UPDATE {table} t SET hash = sha256(prev_hash || {table}_content(t)) WHERE id = $1",
        second,
    )
    result = await audit_chain.verify(r.app, table)
    assert (result.valid, result.first_broken) == (False, third)


async def test_a_deleted_middle_row_breaks_the_next_one(roles: tuple[str, Roles]) -> None:
    service, r = roles
    table = TABLE[service]
    await append(r.app, service, 5)
    rows = await ids(r.owner, table)
    await tamper(r.owner, table, f"DELETE FROM {table} WHERE id = $1", rows[2])
    result = await audit_chain.verify(r.app, table)
    assert (result.valid, result.rows, result.first_broken) == (False, 4, rows[3])


async def test_rows_cut_from_the_end_are_noticed(roles: tuple[str, Roles]) -> None:
    service, r = roles
    table = TABLE[service]
    await append(r.app, service, 3)
    rows = await ids(r.owner, table)
    await tamper(r.owner, table, f"DELETE FROM {table} WHERE id = $1", rows[-1])
    result = await audit_chain.verify(r.app, table)
    assert (result.valid, result.rows, result.first_broken) == (False, 2, rows[-1])


async def lanes(conn: asyncpg.Connection, table: str) -> dict[int, list[int]]:
    """Each lane's row ids, in order."""
    found: dict[int, list[int]] = {}
    for r in await conn.fetch(f"SELECT chain_lane, id FROM {table} ORDER BY id"):
        found.setdefault(r["chain_lane"], []).append(r["id"])
    return found


async def test_a_row_moved_to_another_lane_is_noticed(roles: tuple[str, Roles]) -> None:
    service, r = roles
    table = TABLE[service]
    await append(r.app, service, 4)
    ((lane, rows),) = (await lanes(r.owner, table)).items()  # one connection: one lane
    await tamper(
        r.owner, table, f"UPDATE {table} SET chain_lane = $1 WHERE id = $2", (lane + 1) % 8, rows[1]
    )
    # Its prev_hash names a row of its old lane: it fails in its new one (and rows[2] in the old).
    result = await audit_chain.verify(r.app, table)
    assert (result.valid, result.rows, result.first_broken) == (False, 4, rows[1])


async def test_a_lane_without_its_head_refuses_appends(roles: tuple[str, Roles]) -> None:
    service, r = roles
    table = TABLE[service]
    lane = await r.app.fetchval("SELECT pg_backend_pid() % 8")
    await r.owner.execute(
        "DELETE FROM audit_chain_heads WHERE table_name = $1 AND lane = $2", table, lane
    )
    with pytest.raises(asyncpg.RaiseError, match=f"no audit chain head for {table} lane {lane}"):
        await append(r.app, service)


async def concurrent_appends(url: str, service: str, connections: int, rows: int) -> None:
    """`rows` rows from each of `connections` connections at once, one per transaction."""
    pool = await asyncpg.create_pool(url, min_size=connections, max_size=connections)
    try:
        holders = [await pool.acquire() for _ in range(connections)]  # distinct backends

        async def writer(conn: Conn) -> None:
            for _ in range(rows):
                async with conn.transaction():
                    await append(conn, service)

        await asyncio.gather(*(writer(conn) for conn in holders))
        for conn in holders:
            await pool.release(conn)
    finally:
        await pool.close()


async def test_concurrent_appends_spread_over_lanes_and_verify(roles: tuple[str, Roles]) -> None:
    service, r = roles
    table = TABLE[service]
    await concurrent_appends(r.app_url, service, 16, 50)
    result = await audit_chain.verify(r.app, table)
    assert (result.valid, result.rows, result.first_broken) == (True, 800, None)
    found = await lanes(r.owner, table)
    assert len(found) > 1 and set(found) <= set(range(8))
    # Every lane's head names its last row; lanes nobody wrote to stay empty.
    heads = {
        h["lane"]: h["last_id"]
        for h in await r.owner.fetch(
            "SELECT lane, last_id FROM audit_chain_heads WHERE table_name = $1", table
        )
    }
    assert heads == {lane: found[lane][-1] if lane in found else 0 for lane in range(8)}

    # The last row of the lane that ended first (not the table's last row) cut off: no link
    # fails, but that lane's head disagrees.
    victim = min(rows[-1] for rows in found.values())
    await tamper(r.owner, table, f"DELETE FROM {table} WHERE id = $1", victim)
    result = await audit_chain.verify(r.app, table)
    assert (result.valid, result.rows, result.first_broken) == (False, 799, victim)


@pytest.mark.parametrize("service", SERVICES)
async def test_a_single_chain_upgrades_to_lanes(database_url: str, service: str) -> None:
    """Rows written by the single-chain trigger (before runtime's 0004) still verify after the
    upgrade, as lane 0, and new rows from many connections append in several lanes."""
    table = TABLE[service]
    every = migrations(service)
    old = [m for m in every if "lanes" not in m.name]
    assert len(old) == len(every) - 2  # runtime's 0004 and the service's own
    conn = await asyncpg.connect(database_url)
    try:
        await db.migrate(conn, old)
        await concurrent_appends(database_url, service, 4, 5)
        await append_varied(conn, service, 4)
        before = await conn.fetch(f"SELECT id, hash FROM {table} ORDER BY id")
        await db.migrate(conn, every)
        result = await audit_chain.verify(conn, table)
        assert (result.valid, result.rows) == (True, 24)
        assert await conn.fetch(f"SELECT id, hash FROM {table} ORDER BY id") == before
        assert set(await lanes(conn, table)) == {0}

        await concurrent_appends(database_url, service, 16, 5)
        result = await audit_chain.verify(conn, table)
        assert (result.valid, result.rows, result.first_broken) == (True, 104, None)
        assert len(await lanes(conn, table)) > 1
        await db.migrate(conn, every)  # nothing left: audit_chain_inline ran once per database
    finally:
        await conn.close()


async def test_rows_written_before_the_chain_are_chained(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        every = migrations("identity")
        before = [m for m in every if not (m.component == "identity" and m.version >= 3)]
        before = [m for m in before if not (m.component == "runtime" and m.version >= 2)]
        await db.migrate(conn, before)
        for i in range(3):
            await conn.execute(
                "INSERT INTO audit_log (actor_kind, action, detail) VALUES ('system', 'old', $1)",
                str(i),
            )
        await db.migrate(conn, every)
        await audit.record(conn, None, "new")
        result = await audit_chain.verify(conn, "audit_log")
        assert (result.valid, result.rows) == (True, 4)
    finally:
        await conn.close()


INLINE = {  # the migration that switches each table to its generated trigger
    "identity": ("identity", 9),
    "forms": ("forms", 5),
    "scheduling": ("scheduling", 5),  # 0005 hand-written, 0006 the generated one
}


async def append_varied(conn: Conn, service: str, n: int) -> None:
    """Rows with NULLs, empty strings and non-ASCII text in every field the hash covers."""
    for i in range(n):
        patient = uuid.uuid4() if i % 2 else None
        name = "Zoë Ωμέγα 李" if i % 3 else ""
        if service == "identity":
            await conn.execute(
                "INSERT INTO audit_log (actor_kind, actor_id, actor_name, patient_id, action, "
                "outcome, source_address, detail) VALUES ('staff', $1, $2, $3, 'test.varied', "
                "'ok', '203.0.113.7', $4)",
                f"u{i}",
                name,
                patient,
                f"détail {i}",
            )
        elif service == "forms":
            await conn.execute(
                "INSERT INTO access_log (actor_kind, actor_id, patient_id, action, "
                "source_address, user_agent, detail, document_id) "
                "VALUES ('staff', $1, $2, 'test.varied', '', $3, $4, $5)",
                f"u{i}",
                patient,
                name,
                f"détail {i}",
                uuid.uuid4() if i % 3 else None,
            )
        else:
            await conn.execute(
                "INSERT INTO access_log (actor_kind, actor_id, actor_name, patient_id, "
                "appointment_id, action) VALUES ('staff', $1, $2, $3, $4, 'test.varied')",
                f"u{i}",
                name,
                uuid.uuid4(),
                patient,
            )


@pytest.mark.parametrize("service", SERVICES)
async def test_the_generated_trigger_continues_the_generic_chain(
    database_url: str, service: str
) -> None:
    """Rows hashed by audit_chain_append() and then by the generated trigger verify as one chain
    (verification recomputes every hash with <table>_content()), and tampering still shows."""
    table = TABLE[service]
    every = migrations(service)
    switch = every.index(next(m for m in every if (m.component, m.version) == INLINE[service]))
    conn = await asyncpg.connect(database_url)
    try:
        # The database as it was before runtime's 0003 (generated triggers) and 0004 (lanes).
        generic = [m for m in every[:switch] if not (m.component == "runtime" and m.version >= 3)]
        await db.migrate(conn, generic)
        assert (
            await conn.fetchval(
                "SELECT tgfoid::regproc::text FROM pg_trigger WHERE tgname = $1", f"{table}_chain"
            )
            == "audit_chain_append"
        )
        await append_varied(conn, service, 6)
        await db.migrate(conn, every)
        assert (
            await conn.fetchval(
                "SELECT tgfoid::regproc::text FROM pg_trigger WHERE tgname = $1", f"{table}_chain"
            )
            == f"{table}_chain_append"
        )
        await append_varied(conn, service, 6)
        result = await audit_chain.verify(conn, table)
        assert (result.valid, result.rows, result.first_broken) == (True, 12, None)

        rows = await ids(conn, table)
        await tamper(conn, table, f"UPDATE {table} SET actor_id = 'x' WHERE id = $1", rows[8])
        result = await audit_chain.verify(conn, table)
        assert (result.valid, result.first_broken) == (False, rows[8])
    finally:
        await conn.close()


async def test_a_generated_trigger_that_disagrees_with_the_content_is_refused(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await db.migrate(conn, migrations("identity"))
        await append_varied(conn, "identity", 2)
        with pytest.raises(asyncpg.RaiseError, match="differ from audit_log_content"):
            # outcome and action swapped: other bytes than the content function's
            await conn.execute(
                "SELECT audit_chain_inline('audit_log', ARRAY['id', 'at', 'actor_kind', "
                "'actor_id', 'actor_name', 'patient_id', 'outcome', 'action', "
                "'source_address', 'detail'])"
            )
    finally:
        await conn.close()
