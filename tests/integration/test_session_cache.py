"""identity's session change stream and the gateway's session cache, over real gRPC and a real
PostgreSQL: the triggers notify exactly on changes resolve can see, the stream ends with its
listening connection, and a gateway uses its cache only while the stream is live.

Changes are made straight in the database (not through the gateway), so only identity's
stream can tell the gateway about them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import grpc
import pytest
from aiohttp.test_utils import TestClient, TestServer

from portal.identity.v1 import identity_pb2 as pb
from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.gateway.app import create_app
from services.gateway.context import BACKENDS
from services.gateway.session_cache import SessionCache
from services.gateway.settings import GatewaySettings
from services.identity.session_changes import (
    APPLICATION_NAME,
    CHANNEL,
    Change,
    SessionChanges,
    connector,
)
from tests.conftest import TEST_GATEWAY_ENV, principal_signer
from tests.integration.identity_server import identity_server
from tests.integration.test_lockout_device import ADMIN, PASSWORD

SEARCH = "/api/v1/patients?q=x"  # any staff call that reaches identity alone
DEADLINE = 5.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE:.0f}s: {what}")
        await asyncio.sleep(0.05)


class Running:
    def __init__(
        self, database_url: str, pool: asyncpg.Pool, address: str, changes: SessionChanges
    ) -> None:
        self.database_url = database_url
        self.pool = pool
        self.address = address
        self.changes = changes
        self.hub: asyncio.Task[None] | None = None

    def start_hub(self) -> None:
        self.hub = asyncio.create_task(self.changes.run(connector(self.database_url)))

    async def stop_hub(self) -> None:
        if self.hub is not None:
            self.hub.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.hub


@pytest.fixture
async def identity(database_url: str) -> AsyncIterator[Running]:
    changes = SessionChanges()
    async with identity_server(database_url, changes) as (pool, address):
        running = Running(database_url, pool, address, changes)
        running.start_hub()
        yield running
        await running.stop_hub()


def gateway(address: str) -> TestClient[Any, Any]:
    settings = GatewaySettings.from_env(
        {**TEST_GATEWAY_ENV, "PORTAL_IDENTITY_ADDR": address, "PORTAL_SESSION_CACHE_SECONDS": "600"}
    )
    return TestClient(TestServer(create_app(settings)))


def cache_of(client: TestClient[Any, Any]) -> SessionCache:
    app = client.app
    assert app is not None
    sessions: SessionCache = app[BACKENDS].sessions
    return sessions


async def staff_token(identity: Running, client: TestClient[Any, Any], username: str) -> str:
    channel = grpc.aio.insecure_channel(identity.address)
    try:
        await pb_grpc.IdentityServiceStub(channel).CreateStaffUser(
            pb.CreateStaffUserRequest(
                username=username,
                display_name="Ada",
                role=pb.STAFF_ROLE_CLINICIAN,
                password=PASSWORD,
            ),
            metadata=principal_signer().metadata(ADMIN),
        )
    finally:
        await channel.close(None)
    reply = await client.post(
        "/api/v1/staff/sessions", json={"username": username, "password": PASSWORD}
    )
    assert reply.status == 201, await reply.text()
    token: str = (await reply.json())["token"]
    return token


async def status(client: TestClient[Any, Any], token: str) -> int:
    reply = await client.get(SEARCH, headers={"Authorization": f"Bearer {token}"})
    return reply.status


async def in_use(client: TestClient[Any, Any]) -> bool:
    return cache_of(client).enabled


# ------------------------------------------------------------------ identity's side


async def test_the_triggers_notify_on_what_resolve_reads_and_not_on_touches(
    identity: Running,
) -> None:
    pool = identity.pool
    user = await pool.fetchval(
        """INSERT INTO staff_users (id, username, display_name, role, password_hash)
           VALUES (gen_random_uuid(), 'nurse', 'Nurse', 'clinician', 'x') RETURNING id"""
    )
    await pool.execute(
        """INSERT INTO sessions (id, token_hash, kind, staff_user_id, expires_at)
           VALUES (gen_random_uuid(), 'h', 'staff', $1, now() + interval '1 hour')""",
        user,
    )
    heard: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(identity.database_url)
    await listener.add_listener(CHANNEL, lambda *_: heard.put_nowait("changed"))
    try:
        # Notifications come in commit order: when the change's arrives, any the touches and
        # unchanged rewrites before it made would have arrived already.
        quiet = [
            "UPDATE sessions SET last_seen_at = now()",
            "UPDATE staff_users SET failed_attempts = failed_attempts + 1",
            "UPDATE staff_users SET disabled = disabled, role = role",
            "INSERT INTO sessions (id, token_hash, kind, staff_user_id, expires_at) VALUES"
            " (gen_random_uuid(), gen_random_uuid()::text::bytea, 'staff',"
            " (SELECT id FROM staff_users), now())",
        ]
        changes = [
            "UPDATE staff_users SET disabled = true",
            "UPDATE staff_users SET role = 'admin'",
            "UPDATE sessions SET revoked_at = now() WHERE token_hash = 'h'",
            "INSERT INTO staff_mfa_required_roles (role) VALUES ('admin')",
        ]
        for change in changes:
            for statement in quiet:
                await pool.execute(statement)
            await pool.execute(change)
            assert await asyncio.wait_for(heard.get(), DEADLINE) == "changed"
            assert heard.empty(), f"a quiet statement notified (before {change!r})"
    finally:
        await listener.close()


async def test_a_watch_starts_watching_hears_changes_and_ends_with_the_listener(
    identity: Running,
) -> None:
    watch = identity.changes.watch()
    assert await asyncio.wait_for(anext(watch), DEADLINE) is Change.WATCHING
    await identity.pool.execute("INSERT INTO staff_mfa_required_roles (role) VALUES ('admin')")
    assert await asyncio.wait_for(anext(watch), DEADLINE) is Change.CHANGED
    # The listening connection dies (a database restart, a network cut): the watch ends.
    killed = await identity.pool.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE application_name = $1 AND datname = current_database()""",
        APPLICATION_NAME,
    )
    assert killed == 1
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(watch), DEADLINE)
    # identity listens again; a new watch says so.
    again = identity.changes.watch()
    assert await asyncio.wait_for(anext(again), DEADLINE) is Change.WATCHING
    await identity.stop_hub()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(again), DEADLINE)


# ------------------------------------------------------------------ the gateway's side


async def test_a_change_made_elsewhere_reaches_a_caching_gateway_at_once(
    identity: Running,
) -> None:
    async with gateway(identity.address) as client:
        await eventually(lambda: in_use(client), "the gateway uses its cache")
        token = await staff_token(identity, client, "nurse")
        assert await status(client, token) == 200
        assert len(cache_of(client)) == 1  # resolved once, then kept
        assert await status(client, token) == 200
        await identity.pool.execute("UPDATE staff_users SET disabled = true")

        async def refused() -> bool:
            return await status(client, token) == 401

        await eventually(refused, "the disabled user's token is refused")


async def test_signing_out_is_refused_at_once_by_the_same_gateway(identity: Running) -> None:
    async with gateway(identity.address) as client:
        await eventually(lambda: in_use(client), "the gateway uses its cache")
        token = await staff_token(identity, client, "nurse")
        assert await status(client, token) == 200
        reply = await client.delete(
            "/api/v1/staff/sessions/current", headers={"Authorization": f"Bearer {token}"}
        )
        assert reply.status == 204
        assert await status(client, token) == 401  # no waiting: the sign-out flushed it


async def test_without_the_stream_the_gateway_asks_identity_every_time(
    identity: Running,
) -> None:
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(gateway(identity.address))
        await eventually(lambda: in_use(client), "the gateway uses its cache")
        token = await staff_token(identity, client, "nurse")
        assert await status(client, token) == 200
        # identity stops announcing changes: its watches end, new ones end at once.
        await identity.stop_hub()

        async def not_in_use() -> bool:
            return not cache_of(client).enabled

        await eventually(not_in_use, "the gateway stops using its cache")
        assert await status(client, token) == 200
        assert len(cache_of(client)) == 0  # nothing kept while the stream is down
        # A change nobody announces still takes effect on the very next request.
        await identity.pool.execute("UPDATE staff_users SET disabled = true")
        assert await status(client, token) == 401
