"""A backend that is down, in process: the gateway names it and keeps serving.

The gateway runs in this process (create_app's `backends` seam) against real gRPC channels to
ports where nothing listens, so every backend is genuinely UNAVAILABLE. No route calls forms on
its own yet (the staff chart shows a forms section, tested with the real stack), so this test
adds one route per kind of answer that needs forms: a JSON one and a page.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from portal.forms.v1 import forms_pb2
from services.gateway.app import create_app
from services.gateway.backends import Backends
from services.gateway.context import BACKENDS
from services.gateway.settings import GatewaySettings
from tests.conftest import TEST_GATEWAY_ENV, free_port

NAMES = ("identity", "forms", "scheduling")


async def needs_forms(request: web.Request) -> web.StreamResponse:
    await request.app[BACKENDS].forms.GetChart(forms_pb2.GetChartRequest(patient_id="x"))
    return web.json_response({"unreachable": True})


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    env = {**TEST_GATEWAY_ENV, "PORTAL_COOKIE_SECURE": "false"}
    env.update({f"PORTAL_{name.upper()}_ADDR": f"127.0.0.1:{free_port()}" for name in NAMES})
    settings = GatewaySettings.from_env(env)
    app = create_app(settings, Backends(settings.backends, settings.principal_key))
    app.router.add_get("/api/v1/needs-forms", needs_forms)
    app.router.add_get("/staff/needs-forms", needs_forms)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_an_api_operation_of_a_down_service_is_a_503_problem_naming_it(
    client: TestClient[web.Request, web.Application],
) -> None:
    started = time.monotonic()
    async with client.get("/api/v1/needs-forms") as reply:
        assert reply.status == 503
        assert reply.content_type == "application/problem+json"
        assert reply.headers["Retry-After"] == "5"
        problem = await reply.json()
    assert time.monotonic() - started < 2  # no long wait on a backend that is down
    assert problem["code"] == "SERVICE_UNAVAILABLE"
    assert problem["service"] == "forms"
    assert problem["title"] == "The forms service is unavailable right now"
    assert problem["status"] == 503


async def test_a_page_of_a_down_service_is_a_503_page_naming_it(
    client: TestClient[web.Request, web.Application],
) -> None:
    async with client.get("/staff/needs-forms") as reply:
        assert reply.status == 503
        assert reply.content_type == "text/html"
        assert reply.headers["Retry-After"] == "5"
        page = await reply.text()
    assert "The forms service is unavailable right now" in page
    assert "Traceback" not in page


async def test_readiness_stays_200_while_backends_are_down_and_names_them(
    client: TestClient[web.Request, web.Application],
) -> None:
    started = time.monotonic()
    async with client.get("/readyz") as reply:
        assert reply.status == 200
        body = await reply.json()
    assert time.monotonic() - started < 2
    assert body["status"] == "degraded"
    assert body["not_serving"] == sorted(NAMES)
    assert body["backends"]["forms"] == {"status": "UNAVAILABLE", "events": "UNAVAILABLE"}


async def test_readiness_is_503_once_the_gateway_shuts_down(
    client: TestClient[web.Request, web.Application],
) -> None:
    await client.app.shutdown()  # what SIGTERM starts; kept-alive connections still ask
    async with client.get("/readyz") as reply:
        assert reply.status == 503
        assert (await reply.json())["status"] == "stopping"
