"""asyncpg pool lifecycle and numbered SQL migrations.

Migrations are files named NNNN_description.sql in a package folder. All pending files are applied
in one transaction under an advisory lock and recorded in schema_migrations, so two processes
starting at once apply each migration exactly once. The runtime's own tables (outbox, inbox,
dead letters) come first, as component "runtime".

Two roles per database: the owner applies migrations (PORTAL_MIGRATION_DATABASE_URL) and then,
in the same transaction, grants the service's runtime role (PORTAL_DATABASE_URL) what it needs:
normal DML everywhere except INSERT and SELECT only on the hash-chained audit tables, which the
runtime role therefore can neither change, delete, truncate nor unprotect (triggers belong to
the owner). With no migration URL the service migrates with its own connection, and a runtime
role whose migrations were applied by someone else (a Kubernetes init container) finds nothing
to do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.runtime.backoff import Backoff

# A connection of our own or one borrowed from a pool: every query helper takes either.
Conn = asyncpg.Connection | PoolConnectionProxy

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key shared by every migrator of a database ("portalmg").
MIGRATION_LOCK = 0x706F7274616C6D67
_T = TypeVar("_T")
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


async def pending(conn: Conn, migrations: Sequence[Migration]) -> list[Migration]:
    """The migrations not applied yet (read without any lock or privilege beyond SELECT)."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return list(migrations)
    done = {
        (r["component"], r["version"])
        for r in await conn.fetch("SELECT component, version FROM schema_migrations")
    }
    return [m for m in migrations if (m.component, m.version) not in done]


async def migrate(
    conn: Conn, migrations: Sequence[Migration], *, runtime_role: str | None = None
) -> list[str]:
    """Apply what is pending, atomically, then grant `runtime_role`; return the names applied."""
    applied: list[str] = []
    if runtime_role is None and not await pending(conn, migrations):
        return applied  # also for a runtime role, which may not create schema_migrations
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
        if runtime_role is not None:
            await grant_runtime(conn, runtime_role)
    if applied:
        log.info("migrations applied", extra={"migrations": applied})
    return applied


_ROLE = re.compile(r"^[a-z_][a-z0-9_]*$")


async def grant_runtime(conn: Conn, role: str) -> None:
    """Give the service's runtime role what it needs, and nothing on the audit tables beyond
    INSERT and SELECT (called by the owner inside the migration transaction: GRANTs of
    replicas starting together would otherwise collide)."""
    if not _ROLE.match(role):
        raise ValueError(f"unsafe role name {role!r}")
    if role == await conn.fetchval("SELECT current_user"):
        return  # one role for both: nothing to separate
    chained = [
        r["table_name"]
        for r in await conn.fetch("SELECT DISTINCT table_name FROM audit_chain_heads")
    ]
    statements = [
        f'GRANT USAGE ON SCHEMA public TO "{role}"',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
        f'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM "{role}"',
        f'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_chain_heads FROM "{role}"',
        *(
            f'REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON "{table}" FROM "{role}"'
            for table in chained
        ),
    ]
    for statement in statements:
        await conn.execute(statement)


async def current_user(dsn: str) -> str:
    """The role a connection URL signs in as (libpq defaults included)."""
    conn = await asyncpg.connect(dsn)
    try:
        role: str = await conn.fetchval("SELECT current_user")
    finally:
        await conn.close()
    return role


async def migrate_service(
    pool: asyncpg.Pool, migrations: Sequence[Migration], migration_dsn: str | None
) -> list[str]:
    """A service's start: migrate as the owner when given its URL (granting the pool's role),
    else with the pool's own connection as before."""
    if migration_dsn is None:
        async with pool.acquire() as conn:
            return await migrate(conn, migrations)
    async with pool.acquire() as conn:
        role: str = await conn.fetchval("SELECT current_user")
    owner = await connect(migration_dsn)
    try:
        return await migrate(owner, migrations, runtime_role=role)
    finally:
        await owner.close()


# Called with each connection as it returns to a pool (its transaction is over): how the
# outbox relay of the process learns that events were committed (outbox.released).
RELEASE_HOOKS: list[Callable[[asyncpg.Connection], None]] = []


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release RESET ALL/UNLISTEN/unlock round trip.

    asyncpg still rolls back a forgotten transaction and drops listeners; beyond that we keep
    no session state: no SET, only transaction-scoped advisory locks, and the relay removes its
    LISTEN before releasing. On hot paths the saved round trip is a third of the queries.
    """
    for hook in RELEASE_HOOKS:
        hook(conn)


async def create_pool(
    dsn: str, *, max_size: int = 10, connect_timeout: float = 60.0, **kwargs: Any
) -> asyncpg.Pool:
    """Open a pool, waiting (with backoff) while the database is not reachable yet."""

    async def make() -> asyncpg.Pool:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, command_timeout=30, reset=_keep_session, **kwargs
        )
        if pool is None:  # only with a closed loop; typed as optional
            raise RuntimeError("asyncpg returned no pool")
        return pool

    return await _reachable(make, connect_timeout)


async def connect(dsn: str, *, connect_timeout: float = 60.0) -> asyncpg.Connection:
    """One connection, waiting (with backoff) while the database is not reachable yet."""

    async def make() -> asyncpg.Connection:
        conn: asyncpg.Connection = await asyncpg.connect(dsn)
        return conn

    return await _reachable(make, connect_timeout)


async def _reachable(make: Callable[[], Awaitable[_T]], connect_timeout: float) -> _T:
    backoff = Backoff()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connect_timeout
    while True:
        try:
            return await make()
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
            delay = backoff.next()
            if loop.time() + delay > deadline:
                raise
            log.warning("database not reachable yet, retrying", extra={"error": type(exc).__name__})
            await asyncio.sleep(delay)


async def ensure_role(server_dsn: str, role: str, password: str) -> None:
    """Create login role `role` with `password` (or set its password): a service's runtime role
    for development and tests, made by a server URL that may create roles."""
    if not _ROLE.match(role):
        raise ValueError(f"unsafe role name {role!r}")
    conn = await asyncpg.connect(server_dsn)
    try:
        # Parameters are not allowed in utility statements; quote the literal ourselves.
        literal = await conn.fetchval("SELECT quote_literal($1::text)", password)
        if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await conn.execute(f'ALTER ROLE "{role}" WITH LOGIN PASSWORD {literal}')
        else:
            with contextlib.suppress(asyncpg.DuplicateObjectError):
                await conn.execute(f'CREATE ROLE "{role}" WITH LOGIN PASSWORD {literal}')
    finally:
        await conn.close()


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


def with_user(dsn: str, user: str, password: str) -> str:
    """The same server URL signing in as `user` with `password`."""
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def with_database(dsn: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
