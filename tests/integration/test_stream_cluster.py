"""PORTAL_STREAM_REPLICAS=3 on a real three-node JetStream cluster, as the prod overlay runs it.

The service's own broker and outbox relay (services.runtime.server) create its stream with three
replicas, store an event on every node, and keep publishing (acknowledged) after the node that
led the stream is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from nats.js.api import StreamInfo

from portal.events.v1 import identity_pb2 as events
from services.identity import service as identity_service
from services.runtime.broker import Broker
from services.runtime.outbox import emit
from services.runtime.server import ServiceSpec, outbox_relay, service_broker
from services.runtime.settings import ServiceSettings
from tests.conftest import TEST_SERVICE_ENV
from tests.integration.events import eventually
from tests.integration.nats_cluster import NatsCluster

SUBJECT = "portal.identity.patient.registered"


@pytest.fixture(scope="module")
def cluster() -> Iterator[NatsCluster]:
    folder = Path(tempfile.mkdtemp(prefix="portal-test-nats-cluster-"))
    cluster = NatsCluster(folder, size=3)
    try:
        cluster.start()
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def connect(spec: ServiceSpec, url: str) -> Broker:
    """The identity service's broker as PORTAL_STREAM_REPLICAS=3 configures it."""
    settings = ServiceSettings.from_env(
        "identity", {**TEST_SERVICE_ENV, "PORTAL_NATS_URL": url, "PORTAL_STREAM_REPLICAS": "3"}
    )
    broker = service_broker(spec, settings)
    await broker.start()
    await broker.wait_connected()
    return broker


@contextlib.asynccontextmanager
async def relaying(spec: ServiceSpec, pool: asyncpg.Pool, broker: Broker) -> AsyncIterator[None]:
    """The service's outbox relay running (it retries while the cluster settles)."""
    task = asyncio.create_task(outbox_relay(spec, pool, broker).run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def write_event(pool: asyncpg.Pool, patient_id: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await emit(conn, SUBJECT, patient_id, events.PatientRegistered(patient_id=patient_id))


async def pending(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


def all_copies_current(info: StreamInfo) -> bool:
    cluster = info.cluster
    return (
        cluster is not None
        and cluster.leader is not None
        and len(cluster.replicas or []) == 2
        and all(r.current and not r.offline and not r.lag for r in cluster.replicas or [])
    )


async def test_three_replicas_keep_the_stream_available_when_a_node_stops(
    cluster: NatsCluster, pool: asyncpg.Pool
) -> None:
    spec = identity_service.build({})
    first = await connect(spec, cluster.nodes[0].url)
    try:
        await write_event(pool, "p1")
        # The service's relay creates its stream (IDENTITY) first, then publishes the event;
        # it is marked published only once JetStream acknowledged it.
        async with relaying(spec, pool, first):
            await eventually(lambda: pending(pool), lambda n: n == 0, timeout=15)
        info = await eventually(
            lambda: first.js.stream_info(spec.stream), all_copies_current, timeout=10
        )
        assert info.config.num_replicas == 3
        assert info.state.messages == 1
        assert info.cluster is not None and info.cluster.leader is not None
        placed = {info.cluster.leader, *(r.name for r in info.cluster.replicas or [])}
        assert placed == {node.name for node in cluster.nodes}  # one copy on every node
        leader = cluster.node(info.cluster.leader)
    finally:
        await first.close()

    # The node leading the stream goes away; the service talks to one that stays.
    survivor = next(node for node in cluster.nodes if node is not leader)
    second = await connect(spec, survivor.url)
    try:
        async with relaying(spec, pool, second):
            leader.stop()
            await write_event(pool, "p2")
            # Acknowledged by the two nodes left (a majority of three).
            await eventually(lambda: pending(pool), lambda n: n == 0, timeout=15)
        info = await second.js.stream_info(spec.stream)
        assert info.state.messages == 2
        assert info.config.num_replicas == 3
        assert info.cluster is not None and info.cluster.leader not in (None, leader.name)
    finally:
        await second.close()
