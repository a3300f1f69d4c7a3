"""The whole stack as real processes: four services, real PostgreSQL, a real nats-server."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.devstack.stack import SERVICES, Stack, StackConfig
from services.runtime.settings import DEFAULT_PORTS
from tests.conftest import TEST_GATEWAY_ENV, drop_database, free_port


@dataclass
class RunningStack:
    stack: Stack
    url: str
    trace_file: Path
    admin_password: str


@pytest.fixture(scope="module")
def stack(pg_server_url: str) -> Iterator[RunningStack]:
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
