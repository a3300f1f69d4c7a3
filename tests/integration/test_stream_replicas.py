"""PORTAL_STREAM_REPLICAS reaches the stream's configuration (against the real NATS server).

The test server is a single node: one replica is created, and three are refused by the server
itself (JetStream error 10074), which shows the count is what the service asks for; the prod
overlay's three-node cluster accepts it.
"""

from __future__ import annotations

import uuid

import pytest
from nats.js.errors import APIError

from services.runtime.broker import Broker

NOT_CLUSTERED = 10074  # "replicas > 1 not supported in non-clustered mode"


@pytest.fixture
def name() -> str:
    return f"REPLICAS_{uuid.uuid4().hex[:12].upper()}"


async def connected(nats_url: str, replicas: int) -> Broker:
    broker = Broker(nats_url, name="portal-tests-replicas", stream_replicas=replicas)
    await broker.start()
    await broker.wait_connected()
    return broker


async def test_one_replica_by_default(nats_url: str, name: str) -> None:
    broker = await connected(nats_url, 1)
    try:
        await broker.ensure_stream(name, [f"replicas.{name}.>"])
        info = await broker.js.stream_info(name)
        assert info.config.num_replicas == 1
        await broker.js.delete_stream(name)
    finally:
        await broker.close()


async def test_three_replicas_are_asked_of_the_server(nats_url: str, name: str) -> None:
    broker = await connected(nats_url, 3)
    try:
        with pytest.raises(APIError) as refused:
            await broker.ensure_stream(name, [f"replicas.{name}.>"])
        assert refused.value.err_code == NOT_CLUSTERED
    finally:
        await broker.close()
