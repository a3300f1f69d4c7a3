"""asyncpg pool lifecycle and numbered SQL migrations.

Migrations are files named NNNN_description.sql in a package folder. All pending files are applied
in one transaction under an advisory lock and recorded in schema_migrations, so two processes
starting at once apply each migration exactly once. The runtime's own tables (outbox, inbox,
dead letters) come first, as component "runtime".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.runtime.backoff import Backoff

# A connection of our own or one borrowed from a pool: every query helper takes either.
Conn = asyncpg.Connection | PoolConnectionProxy

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key shared by every migrator of a database ("portalmg").
MIGRATION_LOCK = 0x706F7274616C6D67
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str


def load_migrations(component: str, folder: Traversable) -> list[Migration]:
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(component, int(match[1]), entry.name, entry.read_text("utf-8")))
        elif entry.name.endswith(".sql"):
            raise ValueError(f"migration file {entry.name!r} is not named NNNN_description.sql")
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {component}")
    return found


def runtime_migrations() -> list[Migration]:
    return load_migrations("runtime", resources.files(__package__) / "migrations")


async def migrate(conn: Conn, migrations: Sequence[Migration]) -> list[str]:
    """Apply what is pending, atomically; return the names applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   component text NOT NULL,
                   version integer NOT NULL,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (component, version))"""
        )
        done = {
            (r["component"], r["version"])
            for r in await conn.fetch("SELECT component, version FROM schema_migrations")
        }
        for m in migrations:
            if (m.component, m.version) in done:
                continue
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                m.component,
                m.version,
                m.name,
            )
            applied.append(f"{m.component}/{m.name}")
    if applied:
        log.info("migrations applied", extra={"migrations": applied})
    return applied


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release RESET ALL/UNLISTEN/unlock round trip.

    asyncpg still rolls back a forgotten transaction and drops listeners; beyond that we keep
    no session state: no SET, only transaction-scoped advisory locks, and the relay removes its
    LISTEN before releasing. On hot paths the saved round trip is a third of the queries.
    """


async def create_pool(
    dsn: str, *, max_size: int = 10, connect_timeout: float = 60.0, **kwargs: Any
) -> asyncpg.Pool:
    """Open a pool, waiting (with backoff) while the database is not reachable yet."""
    backoff = Backoff()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connect_timeout
    while True:
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max_size,
                command_timeout=30,
                reset=_keep_session,
                **kwargs,
            )
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            delay = backoff.next()
            if loop.time() + delay > deadline:
                raise
            log.warning("database not reachable yet, retrying", extra={"error": type(exc).__name__})
            await asyncio.sleep(delay)
        else:
            assert pool is not None
            return pool


async def ensure_database(server_dsn: str, name: str) -> None:
    """Create database `name` on the server if it does not exist (development and tests)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"unsafe database name {name!r}")
    conn = await asyncpg.connect(server_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            # Another process may create it at the same moment.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def with_database(dsn: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
