"""The gateway's liveness and readiness, and the landing page."""

from __future__ import annotations

import signal

import aiohttp

from tests.integration.events import eventually
from tests.system.conftest import RunningStack


async def test_landing_page_links_both_portals(stack: RunningStack) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/") as reply:
        assert reply.status == 200
        page = await reply.text()
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert reply.headers["X-Frame-Options"] == "DENY"
    assert 'href="/staff/"' in page
    assert "/portal/onsite/" in page and "/portal/offsite/" in page


async def test_readyz_names_a_backend_that_stopped(stack: RunningStack) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.url}/healthz") as reply:
            assert reply.status == 200
        async with http.get(f"{stack.url}/readyz") as reply:
            assert reply.status == 200
            body = await reply.json()
        assert body["status"] == "ready"
        assert set(body["backends"]) == {"identity", "forms", "scheduling"}

        # Stop scheduling; readiness must fail and say which backend it is.
        scheduling = stack.stack.children["scheduling"]
        scheduling.send_signal(signal.SIGTERM)
        assert scheduling.wait(30) == 0

        async def readiness() -> tuple[int, list[str]]:
            async with http.get(f"{stack.url}/readyz") as r:
                return r.status, (await r.json())["not_ready"]

        assert await eventually(readiness, lambda v: v[0] == 503) == (503, ["scheduling"])
        async with http.get(f"{stack.url}/healthz") as reply:
            assert reply.status == 200  # the gateway itself is alive

        # Start it again: readiness comes back.
        stack.stack.restart("scheduling")
        await eventually(readiness, lambda v: v[0] == 200, timeout=30)
