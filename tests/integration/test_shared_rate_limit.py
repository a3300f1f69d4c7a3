"""The per-address sign-in limit is shared: two gateway instances in this process, both calling
one real identity (real gRPC, real PostgreSQL), draw on the same budget."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from services.identity import rate_limit
from tests.conftest import TEST_GATEWAY_ENV
from tests.integration.identity_server import identity_server

RATE = 3
WRONG = {"username": "nobody", "password": "wrong"}


@pytest.fixture
async def identity(database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    async with identity_server(database_url) as running:
        yield running


@pytest.fixture
def identity_pool(identity: tuple[asyncpg.Pool, str]) -> asyncpg.Pool:
    return identity[0]


@pytest.fixture
def identity_address(identity: tuple[asyncpg.Pool, str]) -> str:
    return identity[1]


def gateway(identity_address: str, **env: str) -> TestClient[Any, Any]:
    settings = GatewaySettings.from_env(
        {
            **TEST_GATEWAY_ENV,
            "PORTAL_IDENTITY_ADDR": identity_address,
            "PORTAL_LOGIN_RATE_PER_MINUTE": str(RATE),
            **env,
        }
    )
    return TestClient(TestServer(create_app(settings)))


async def test_two_gateways_share_one_budget(identity_address: str) -> None:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(gateway(identity_address))
        second = await stack.enter_async_context(gateway(identity_address))
        statuses = []
        for client in [first, second] * 3:
            reply = await client.post("/api/v1/staff/sessions", json=WRONG)
            statuses.append(reply.status)
        # Alone, each gateway would have allowed three: together they allow three.
        assert statuses == [401, 401, 401, 429, 429, 429]
        assert 1 <= int(reply.headers["Retry-After"]) <= 60


async def test_behind_a_trusted_proxy_each_browser_has_its_own_budget(
    identity_address: str,
) -> None:
    async with gateway(identity_address, PORTAL_TRUSTED_PROXIES="127.0.0.1/32") as client:

        async def attempt(browser: str) -> int:
            reply = await client.post(
                "/api/v1/staff/sessions", json=WRONG, headers={"X-Forwarded-For": browser}
            )
            return reply.status

        assert [await attempt("198.51.100.7") for _ in range(RATE + 1)] == [401] * RATE + [429]
        # The proxy's own address is not what is counted: another browser still gets in.
        assert await attempt("198.51.100.8") == 401


async def test_concurrent_attempts_are_all_counted(identity_pool: asyncpg.Pool) -> None:
    async def one() -> bool:
        async with identity_pool.acquire() as conn:
            verdict = await rate_limit.attempt(conn, "192.0.2.1", limit=5, window_seconds=60)
        return verdict.allowed

    verdicts = await asyncio.gather(*(one() for _ in range(20)))
    assert verdicts.count(True) == 5


async def test_a_new_window_restores_the_budget(identity_pool: asyncpg.Pool) -> None:
    async with identity_pool.acquire() as conn:
        for _ in range(2):
            await rate_limit.attempt(conn, "192.0.2.2", limit=2, window_seconds=60)
        refused = await rate_limit.attempt(conn, "192.0.2.2", limit=2, window_seconds=60)
        assert not refused.allowed
        assert 1 <= refused.retry_after <= 60
        # The window ends (moved back rather than waited for).
        await conn.execute(
            "UPDATE sign_in_rate SET window_start = now() - interval '61 seconds'"
            " WHERE address = '192.0.2.2'"
        )
        assert (await rate_limit.attempt(conn, "192.0.2.2", limit=2, window_seconds=60)).allowed
        # Expired windows of other addresses are swept as attempts go by.
        await conn.execute("UPDATE sign_in_rate SET window_start = now() - interval '1 hour'")
        await rate_limit.attempt(conn, "192.0.2.3", limit=2, window_seconds=60)
        left = await conn.fetch("SELECT address FROM sign_in_rate")
        assert [row["address"] for row in left] == ["192.0.2.3"]
