"""The whole stack as real processes: four services, real PostgreSQL, a real nats-server.

Starting a stack takes seconds of a 2-core machine, so the modules share one (the `stack`
fixture hands each module the session's stack, with the sign-in budgets and admin's lockout a
fresh stack has). A module that stops services or needs a clean stack of its own says
`pytestmark = pytest.mark.private_stack`. Tests on the shared stack make their own data
(unique names, the ids they created) and never rely on what other modules left behind.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from services.devstack.stack import SERVICES, Stack, StackConfig
from services.runtime.db import with_database
from services.runtime.settings import DEFAULT_PORTS
from tests.conftest import TEST_GATEWAY_ENV, drop_database, free_port
from tests.integration.events import eventually


@dataclass
class RunningStack:
    stack: Stack
    url: str
    trace_file: Path
    admin_password: str


@contextmanager
def running_stack(pg_server_url: str) -> Iterator[RunningStack]:
    """A whole stack on databases of its own and a nats-server of its own, removed after."""
    folder = Path(tempfile.mkdtemp(prefix="portal-stack-"))
    trace_file = folder / "spans.jsonl"
    admin_password = "Admin-" + uuid.uuid4().hex[:16]
    config = StackConfig(
        data_dir=folder / "data",
        database_url=pg_server_url,
        nats_url=None,  # a nats-server of its own, so streams start empty
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        service_ports={name: free_port() for name in DEFAULT_PORTS},
        pg_port=0,
        nats_port=free_port(),
        database_prefix=f"s{uuid.uuid4().hex[:10]}_",
        extra_env={
            "PORTAL_TRACE_FILE": str(trace_file),
            "PORTAL_ADMIN_PASSWORD": admin_password,
            "PORTAL_SHUTDOWN_DRAIN": "0.1",
            "PORTAL_CLINIC_TIMEZONE": "America/New_York",
        },
    )
    # The tests' keys, so that tests can sign principals and letters as this gateway does.
    stack = Stack(config, {**os.environ, **TEST_GATEWAY_ENV})
    try:
        stack.start()
        stack.wait_ready(timeout=90)
        yield RunningStack(stack, stack.gateway_url, trace_file, admin_password)
    finally:
        stack.stop()
        for name in SERVICES:
            asyncio.run(drop_database(pg_server_url, stack.database(name)))


def service_database(running: RunningStack, service: str) -> str:
    """The URL of a service's database in the stack (as the server's superuser)."""
    return with_database(running.stack.config.database_url or "", running.stack.database(service))


async def known_to_scheduling(running: RunningStack, patient_id: str) -> None:
    """Wait until scheduling has handled the patient's patient.registered event (its patients
    projection): staff book only for patients it knows."""
    url = service_database(running, "scheduling")

    async def probe() -> bool:
        conn = await asyncpg.connect(url)
        try:
            found = await conn.fetchval(
                "SELECT true FROM patients WHERE id = $1", uuid.UUID(patient_id)
            )
        finally:
            await conn.close()
        return bool(found)

    await eventually(probe, lambda found: found)


@asynccontextmanager
async def not_yet_known(running: RunningStack, patient_id: str) -> AsyncIterator[None]:
    """Inside: scheduling has not handled the patient's registration yet (its projection row
    taken away, as if the event were still on its way); after: known again."""
    conn = await asyncpg.connect(service_database(running, "scheduling"))
    try:
        await conn.execute("DELETE FROM patients WHERE id = $1", uuid.UUID(patient_id))
        yield
        await conn.execute("INSERT INTO patients (id) VALUES ($1)", uuid.UUID(patient_id))
    finally:
        await conn.close()


async def fresh_sign_in_state(pg_server_url: str, running: RunningStack) -> None:
    """What a new stack starts with: every address's full sign-in budget, admin not locked and
    without two-factor sign-in (a module may spend 127.0.0.1's budget or lock admin on purpose,
    as a test of them; a test that fails half-way may leave admin's second factor on)."""
    url = with_database(pg_server_url, running.stack.database("identity"))
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DELETE FROM sign_in_rate")
        await conn.execute(
            "UPDATE staff_users SET failed_attempts = 0, lockouts = 0, locked_until = NULL"
            " WHERE username = 'admin'"
        )
        await conn.execute(
            "DELETE FROM mfa_totp WHERE owner_kind = 'staff'"
            " AND owner_id IN (SELECT id FROM staff_users WHERE username = 'admin')"
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, pg_server_url: str) -> Iterator[RunningStack]:
    """The whole stack for one module: the session's shared one, or (private_stack) its own."""
    if request.node.get_closest_marker("private_stack"):
        with running_stack(pg_server_url) as own:
            yield own
        return
    shared: RunningStack = request.getfixturevalue("shared_stack")
    asyncio.run(fresh_sign_in_state(pg_server_url, shared))
    yield shared
