"""The sign-in rate limit across gateway replicas: two gateway processes in front of one identity
(real processes, real gRPC, the count in identity's PostgreSQL), both behind a trusted proxy.

The test client plays the ingress: it connects from 127.0.0.1, which the gateways trust
(PORTAL_TRUSTED_PROXIES), and names the browser it forwards in X-Forwarded-For.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.system.conftest import RunningStack
from tests.system.gateways import gateway_replicas

pytestmark = pytest.mark.system
RATE = 3
WRONG = {"username": "nobody", "password": "wrong-guess"}


@pytest.fixture(scope="module")
def replicas(stack: RunningStack) -> Iterator[list[str]]:
    env = {"PORTAL_LOGIN_RATE_PER_MINUTE": str(RATE), "PORTAL_TRUSTED_PROXIES": "127.0.0.1/32"}
    with gateway_replicas(stack.stack, 2, env) as urls:
        yield urls


@pytest.fixture
async def ingress() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.1", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def guess(
    http: aiohttp.ClientSession, gateway: str, forwarded_for: str | None
) -> tuple[int, str | None]:
    """One wrong staff sign-in: the status and Retry-After."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    async with http.post(f"{gateway}/api/v1/staff/sessions", json=WRONG, headers=headers) as reply:
        body = await reply.json(content_type=None)
        assert reply.content_type == "application/problem+json", body
        return reply.status, reply.headers.get("Retry-After")


async def test_guesses_split_across_two_gateways_hit_one_limit(
    replicas: list[str], ingress: aiohttp.ClientSession
) -> None:
    first, second = replicas
    browser = "198.51.100.7"
    statuses = [(await guess(ingress, g, browser))[0] for g in (first, second, first)]
    assert statuses == [401] * RATE
    # The next guess goes to the other gateway, which has seen only one of the three itself.
    status, retry_after = await guess(ingress, second, browser)
    assert status == 429
    assert retry_after is not None and 1 <= int(retry_after) <= 60
    assert (await guess(ingress, first, browser))[0] == 429


async def test_the_limit_counts_the_forwarded_browser_not_the_proxy(
    replicas: list[str], ingress: aiohttp.ClientSession
) -> None:
    first, second = replicas
    browser = "198.51.100.8"
    for gateway in (first, second, first):
        assert (await guess(ingress, gateway, browser))[0] == 401
    assert (await guess(ingress, second, browser))[0] == 429
    # Writing another address in front of the proxy's entry does not escape the limit: only
    # the hop the trusted proxy added is believed.
    assert (await guess(ingress, first, f"203.0.113.9, {browser}"))[0] == 429
    # Everyone else behind the same proxy still has a budget, at either gateway: the proxy's
    # own address (127.0.0.1) is not what was counted.
    assert (await guess(ingress, first, "198.51.100.9"))[0] == 401
    assert (await guess(ingress, second, "198.51.100.9"))[0] == 401
    assert (await guess(ingress, second, None))[0] == 401
