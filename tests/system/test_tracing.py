"""One trace id spans the gateway request, the gRPC handler and the NATS consumer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.events import eventually
from tests.system.conftest import RunningStack


def spans(trace_file: Path) -> list[dict[str, Any]]:
    if not trace_file.exists():
        return []
    return [json.loads(line) for line in trace_file.read_text().splitlines() if line.strip()]


async def test_one_trace_from_gateway_request_to_event_consumer(stack: RunningStack) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{stack.url}/api/v1/staff/sessions",
            json={"username": "admin", "password": stack.admin_password},
        ) as reply:
            assert reply.status == 201
            token = (await reply.json())["token"]
        async with http.post(
            f"{stack.url}/api/v1/patients",
            json={
                "first_name": "Trace",
                "last_name": "Through",
                "date_of_birth": "1990-01-02",
                "sex": "other",
            },
            headers={"Authorization": f"Bearer {token}"},
        ) as reply:
            assert reply.status == 201

    def request_span() -> dict[str, Any] | None:
        for span in spans(stack.trace_file):
            if (
                span["resource"]["attributes"]["service.name"] == "portal-gateway"
                and span["kind"] == "SpanKind.SERVER"
                and span["attributes"].get("http.method") == "POST"
                and span["attributes"].get("http.route") == "/api/v1/patients"
            ):
                return span
        return None

    async def trace_of_request() -> list[dict[str, Any]]:
        root = request_span()
        if root is None:
            return []
        trace_id = root["context"]["trace_id"]
        return [s for s in spans(stack.trace_file) if s["context"]["trace_id"] == trace_id]

    def has_consumer(trace: list[dict[str, Any]]) -> bool:
        return any(s["kind"] == "SpanKind.CONSUMER" for s in trace)

    trace = await eventually(trace_of_request, has_consumer, timeout=30)
    by_service = {
        (s["resource"]["attributes"]["service.name"], s["kind"], s["name"]) for s in trace
    }
    assert (
        "portal-identity",
        "SpanKind.SERVER",
        "/portal.identity.v1.IdentityService/RegisterPatient",
    ) in by_service
    assert (
        "portal-identity",
        "SpanKind.PRODUCER",
        "portal.identity.patient.registered publish",
    ) in by_service
    assert (
        "portal-forms",
        "SpanKind.CONSUMER",
        "portal.identity.patient.registered process",
    ) in by_service
    # No patient data in any span of the trace.
    text = json.dumps(trace)
    assert "Trace" not in text.replace("trace_id", "").replace("traceparent", "")
    assert "1990-01-02" not in text
