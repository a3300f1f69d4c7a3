"""The gateway's liveness and readiness, and the landing page."""

from __future__ import annotations

import json
import re
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


async def test_a_backend_outage_fails_requests_cleanly(stack: RunningStack) -> None:
    """identity down: pages and API answer 503 with a clean page or problem, never a trace."""
    identity = stack.stack.children["identity"]
    identity.send_signal(signal.SIGTERM)
    assert identity.wait(30) == 0
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{stack.url}/api/v1/staff/sessions",
                json={"username": "admin", "password": stack.admin_password},
            ) as reply:
                assert reply.status == 503
                assert reply.content_type == "application/problem+json"
                body = await reply.json()
                assert body["status"] == 503 and "Traceback" not in json.dumps(body)
            async with http.get(
                f"{stack.url}/api/v1/patients", headers={"Authorization": "Bearer whatever"}
            ) as reply:
                assert reply.status == 503
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            async with browser.get(f"{stack.url}/staff/login") as reply:
                token = re.search(r'name="csrf_token" value="([^"]+)"', await reply.text())
                assert token is not None
            form = {"csrf_token": token[1], "username": "admin", "password": "whatever-it-is"}
            async with browser.post(f"{stack.url}/staff/login", data=form) as reply:
                page = await reply.text()
                assert reply.status == 503
                assert "Traceback" not in page and "<h1" in page
    finally:
        stack.stack.restart("identity")

    async def serving() -> int:
        async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/readyz") as r:
            return r.status

    await eventually(serving, lambda status: status == 200, timeout=30)
