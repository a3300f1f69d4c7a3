"""Shared fixtures: real PostgreSQL and real NATS, embedded unless URLs are given.

PORTAL_TEST_DATABASE_URL  a PostgreSQL server to use instead of an embedded one
PORTAL_TEST_NATS_URL      a NATS server with JetStream to use instead of an embedded one
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest

from services.devstack.embedded import EmbeddedNats, EmbeddedPostgres
from services.runtime import db
from services.runtime.broker import Broker
from services.runtime.principal import PrincipalSigner, PrincipalVerifier
from services.runtime.principal_keys import load_public_keys, load_signing_key

if TYPE_CHECKING:
    from tests.system.conftest import RunningStack

# A fixed Ed25519 pair for tests only: the gateway signs with the private key, services verify
# with the public one (services/runtime/principal.py).
TEST_PRINCIPAL_PRIVATE_KEY = """-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIA+6gyMvrzEi27bLfOgFv+3Z5+KQ9Qtnjw4Z/Wffmpy3
-----END PRIVATE KEY-----
"""
TEST_PRINCIPAL_PUBLIC_KEY = """-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAe+ojWVPy0TWMTt9+TDL3A0ahCHQDn59pNk6yoZwe+GE=
-----END PUBLIC KEY-----
"""
TEST_GATEWAY_SECRET = "test-gateway-secret-" + "x" * 40
# The settings a test gives a gateway, and those it gives a service.
TEST_GATEWAY_ENV = {
    "PORTAL_PRINCIPAL_PRIVATE_KEY": TEST_PRINCIPAL_PRIVATE_KEY,
    "PORTAL_GATEWAY_SECRET": TEST_GATEWAY_SECRET,
}
TEST_SERVICE_ENV = {"PORTAL_PRINCIPAL_PUBLIC_KEYS": TEST_PRINCIPAL_PUBLIC_KEY}


def principal_signer() -> PrincipalSigner:
    """Signs principals as the gateway of the tests does."""
    return PrincipalSigner(load_signing_key(TEST_PRINCIPAL_PRIVATE_KEY))


def principal_verifier() -> PrincipalVerifier:
    """Verifies principals as the services of the tests do."""
    return PrincipalVerifier(load_public_keys(TEST_PRINCIPAL_PUBLIC_KEY))


_HANDED_OUT_PORTS: set[int] = set()
_PICK = random.SystemRandom()  # not the seeded `random` some tests fix, nor another run's


def _below_ephemeral_ports() -> range:
    """Ports under the kernel's range for outgoing connections, which could otherwise take a
    port between its pick here and the server binding it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12000), low)


def free_port() -> int:
    """A port free now and not handed out before in this run (a port offered again before the
    server it was picked for has bound it would end up shared or refused)."""
    candidates = _below_ephemeral_ports()
    for _ in range(100):
        port = _PICK.choice(candidates)
        if port in _HANDED_OUT_PORTS:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT_PORTS.add(port)
        return port
    raise RuntimeError(f"no free port in {candidates}")


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    given = os.environ.get("PORTAL_TEST_DATABASE_URL")
    if given:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="portal-test-pg-"))
    server = EmbeddedPostgres(folder / "data", port=free_port(), durable=False)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def start_nats(folder: Path, port: int | None = None) -> EmbeddedNats:
    server = EmbeddedNats(folder, port=port or free_port())
    server.start()
    return server


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    given = os.environ.get("PORTAL_TEST_NATS_URL")
    if given:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="portal-test-nats-"))
    server = start_nats(folder / "data")
    try:
        yield server.url
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def database_url(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    await db.ensure_database(pg_server_url, name)
    yield db.with_database(pg_server_url, name)
    await drop_database(pg_server_url, name)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database with the runtime's tables (outbox, inbox, dead letters)."""
    pool = await db.create_pool(database_url, max_size=5)
    async with pool.acquire() as conn:
        await db.migrate(conn, db.runtime_migrations())
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def shared_stack(pg_server_url: str) -> Iterator[RunningStack]:
    """One whole stack for every system and browser module that needs none of its own
    (tests/system/conftest.py: `stack`); here so that every package shares the same one."""
    from tests.system.conftest import running_stack

    with running_stack(pg_server_url) as running:
        yield running


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[Broker]:
    broker = Broker(nats_url, name="portal-tests")
    await broker.start()
    await broker.wait_connected()
    yield broker
    await broker.close()


@pytest.fixture
async def stream(broker: Broker) -> AsyncIterator[tuple[str, str]]:
    """A stream of its own for one test: (name, subject prefix)."""
    tag = uuid.uuid4().hex[:10]
    name, prefix = f"T_{tag}", f"t{tag}"
    await broker.ensure_stream(name, [f"{prefix}.>"])
    yield name, prefix
    await broker.js.delete_stream(name)
