"""The gateway's liveness and readiness, and the landing page.

The stack is this module's own (private_stack): its tests stop and start services."""

from __future__ import annotations

import asyncio
import json
import re
import sys

import aiohttp
import pytest

from tests.integration.events import eventually
from tests.system.conftest import RunningStack

pytestmark = pytest.mark.private_stack


async def test_landing_page_links_both_portals(stack: RunningStack) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/") as reply:
        assert reply.status == 200
        page = await reply.text()
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert reply.headers["X-Frame-Options"] == "DENY"
    assert 'href="/staff/"' in page
    assert "/portal/onsite/" in page and "/portal/offsite/" in page


async def test_readyz_stays_ready_and_names_a_backend_that_stopped(stack: RunningStack) -> None:
    """Readiness is the gateway's: a backend outage is reported, never a reason to leave."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stack.url}/healthz") as reply:
            assert reply.status == 200
        async with http.get(f"{stack.url}/readyz") as reply:
            assert reply.status == 200
            body = await reply.json()
        assert (body["status"], body["not_serving"]) == ("ready", [])
        assert set(body["backends"]) == {"identity", "forms", "scheduling"}
        assert body["backends"]["scheduling"]["status"] == "SERVING"

        # Stop scheduling: the gateway stays ready and says which backend is not serving.
        assert stack.stack.stop_service("scheduling") == 0

        async def readiness() -> tuple[int, str, list[str]]:
            async with http.get(f"{stack.url}/readyz") as r:
                body = await r.json()
                return r.status, body["status"], body["not_serving"]

        assert await eventually(readiness, lambda v: v[1] != "ready") == (
            200,
            "degraded",
            ["scheduling"],
        )

        # Start it again: the report says so.
        stack.stack.start_service("scheduling")
        await eventually(readiness, lambda v: v == (200, "ready", []), timeout=30)


async def test_a_backend_outage_fails_requests_cleanly(stack: RunningStack) -> None:
    """identity down: pages and API answer 503 with a clean page or problem, never a trace."""
    assert stack.stack.stop_service("identity") == 0
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{stack.url}/api/v1/staff/sessions",
                json={"username": "admin", "password": stack.admin_password},
            ) as reply:
                assert reply.status == 503
                assert reply.content_type == "application/problem+json"
                assert reply.headers["Retry-After"]
                body = await reply.json()
                assert body["status"] == 503 and "Traceback" not in json.dumps(body)
                assert (body["code"], body["service"]) == ("SERVICE_UNAVAILABLE", "identity")
                assert body["title"] == "The identity service is unavailable right now"
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
                assert "The identity service is unavailable right now" in page
    finally:
        stack.stack.start_service("identity")

    async def serving() -> list[str]:
        async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/readyz") as r:
            return list((await r.json())["not_serving"])

    await eventually(serving, lambda names: names == [], timeout=30)


async def test_a_second_service_on_a_taken_port_exits_instead_of_sharing_it(
    stack: RunningStack,
) -> None:
    """gRPC would let a second server share the port (SO_REUSEPORT) and take half the calls."""
    env = dict(stack.stack.child_env("scheduling"))
    second = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.scheduling",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(second.communicate(), timeout=60)
    finally:
        if second.returncode is None:  # it listens after all: stop it, then fail
            second.kill()
            await second.wait()
    assert second.returncode == 2, output.decode(errors="replace")
    assert b"cannot listen" in output
    async with aiohttp.ClientSession() as http, http.get(f"{stack.url}/readyz") as reply:
        assert (await reply.json())["not_serving"] == []
