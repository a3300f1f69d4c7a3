"""Numbered migrations: atomic, recorded, and safe when several processes migrate at once."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.runtime import db
from services.runtime.db import Migration


def counting_migrations() -> list[Migration]:
    return [
        Migration("demo", 1, "0001_counter.sql", "CREATE TABLE counter (n integer NOT NULL);"),
        Migration("demo", 2, "0002_count.sql", "INSERT INTO counter VALUES (1);"),
        Migration("demo", 3, "0003_count.sql", "INSERT INTO counter VALUES (1);"),
    ]


async def test_two_concurrent_migrators_apply_each_migration_once(database_url: str) -> None:
    connections = [await asyncpg.connect(database_url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(db.migrate(c, counting_migrations()) for c in connections))
        assert sorted(len(r) for r in results) == [0, 3]  # one did all, the other found nothing
        conn = connections[0]
        assert await conn.fetchval("SELECT sum(n) FROM counter") == 2
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 3
        # Running again is a no-op.
        assert await db.migrate(conn, counting_migrations()) == []
    finally:
        for c in connections:
            await c.close()


async def test_a_failing_migration_applies_nothing(database_url: str) -> None:
    broken = [
        *counting_migrations()[:2],
        Migration("demo", 3, "0003_broken.sql", "INSERT INTO no_such_table VALUES (1);"),
    ]
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await db.migrate(conn, broken)
        assert await conn.fetchval("SELECT to_regclass('counter')") is None
        assert await conn.fetchval("SELECT to_regclass('schema_migrations')") is None
    finally:
        await conn.close()


def test_service_migration_files_are_numbered_and_load() -> None:
    from importlib import resources

    for service in ("identity", "forms", "scheduling"):
        found = db.load_migrations(service, resources.files(f"services.{service}") / "migrations")
        assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert db.runtime_migrations()[0].name == "0001_outbox_inbox.sql"
