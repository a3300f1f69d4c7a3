"""Each service's NATS user, on a real nats-server configured as `make run` configures it.

Forms cannot publish an identity event, change identity's stream or read identity's replies;
identity can publish its events; and every service can create its stream and consume, through
its real subscriptions, the events it subscribes to.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js.api import StreamConfig

from services.devstack.embedded import EmbeddedNats
from services.forms import service as forms_service
from services.identity import service as identity_service
from services.runtime.broker import Broker
from services.runtime.consumer import EventConsumer
from services.runtime.nats_users import CONSUMERS, STREAMS, Consumer, authorization
from services.runtime.server import Runtime, ServiceSpec
from services.runtime.settings import ServiceSettings
from services.scheduling import service as scheduling_service
from tests.conftest import TEST_SERVICE_ENV, free_port, principal_verifier

SPECS = {
    "identity": identity_service.build,
    "forms": forms_service.build,
    "scheduling": scheduling_service.build,
}
FORGED = "portal.identity.patient.registered"


class Server:
    def __init__(self, url: str, passwords: dict[str, str]) -> None:
        self.url = url
        self.passwords = passwords


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A nats-server of its own with the services' users, as `make run` starts it."""
    passwords = {name: secrets.token_urlsafe(16) for name in STREAMS}
    folder = Path(tempfile.mkdtemp(prefix="portal-test-nats-users-"))
    nats_server = EmbeddedNats(
        folder / "data",
        port=free_port(),
        authorization=authorization({n: json.dumps(p) for n, p in passwords.items()}),
    )
    nats_server.start()
    try:
        yield Server(nats_server.url, passwords)
    finally:
        nats_server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def brokers(server: Server) -> AsyncIterator[dict[str, Broker]]:
    """One connection per service, each as its own user."""
    connected = {
        name: Broker(server.url, name=f"test-{name}", user=name, password=password)
        for name, password in server.passwords.items()
    }
    for broker in connected.values():
        await broker.start()
        await broker.wait_connected()
    yield connected
    for broker in connected.values():
        await broker.close()


def spec(name: str) -> ServiceSpec:
    return SPECS[name]({})


async def ensure_streams(brokers: dict[str, Broker]) -> None:
    # Twice: the second call takes the update path of an existing stream.
    for _ in range(2):
        for name, broker in brokers.items():
            await broker.ensure_stream(spec(name).stream, spec(name).subjects)


async def stored(broker: Broker, stream: str) -> int:
    return int((await broker.js.stream_info(stream)).state.messages)


async def test_forms_cannot_publish_an_identity_event_while_identity_can(
    brokers: dict[str, Broker],
) -> None:
    await ensure_streams(brokers)
    before = await stored(brokers["identity"], "IDENTITY")
    ack = await brokers["identity"].js.publish(FORGED, b"real", timeout=5)
    assert ack.stream == "IDENTITY"
    # The server drops the forged publish: no acknowledgement, nothing stored.
    with pytest.raises(nats.errors.TimeoutError):
        await brokers["forms"].js.publish(FORGED, b"forged", timeout=1)
    assert await stored(brokers["identity"], "IDENTITY") == before + 1
    # Nor can forms reroute its own subjects into identity's stream.
    with pytest.raises(nats.errors.TimeoutError):
        await (
            brokers["forms"]
            .nc.jetstream(timeout=1)
            .update_stream(
                StreamConfig(name="IDENTITY", subjects=["portal.identity.>", "portal.forms.x"])
            )
        )
    assert (await brokers["identity"].js.stream_info("IDENTITY")).config.subjects == [
        "portal.identity.>"
    ]


async def test_the_server_reports_each_violation_to_the_offender(server: Server) -> None:
    violations: asyncio.Queue[str] = asyncio.Queue()

    async def on_error(exc: Exception) -> None:
        await violations.put(str(exc))

    forms = await nats.connect(
        server.url, user="forms", password=server.passwords["forms"], error_cb=on_error
    )
    try:
        await forms.publish(FORGED, b"forged")
        assert "permissions violation for publish" in await asyncio.wait_for(violations.get(), 10)
        # Identity's replies (its acknowledgements, the events its consumers fetch) stay its own.
        await forms.subscribe("_INBOX.identity.>")
        assert "permissions violation for subscription" in await asyncio.wait_for(
            violations.get(), 10
        )
    finally:
        await forms.close()


async def test_a_wrong_password_is_refused(server: Server) -> None:
    with pytest.raises(nats.errors.Error):
        await nats.connect(
            server.url, user="forms", password="guess", allow_reconnect=False, connect_timeout=2
        )


@pytest.mark.parametrize("name", list(STREAMS))
async def test_each_service_consumes_what_it_subscribes_to(
    name: str, brokers: dict[str, Broker], pool: asyncpg.Pool
) -> None:
    await ensure_streams(brokers)
    settings = ServiceSettings.from_env(name, TEST_SERVICE_ENV)
    runtime = Runtime(settings, pool, brokers[name], principal_verifier())
    subscriptions = spec(name).subscriptions(runtime)
    # The permissions list every consumer the service binds to.
    assert {Consumer(s.stream, s.durable) for s in subscriptions} <= set(CONSUMERS[name])
    owners = {stream: owner for owner, stream in STREAMS.items()}
    for subscription in subscriptions:
        subject = subscription.subject.replace("*", "test").replace(">", "test")
        event_id = str(uuid.uuid4())
        owner = brokers[owners[subscription.stream]]
        await owner.js.publish(subject, b"event", headers={"Nats-Msg-Id": event_id}, timeout=5)
        # Bind to (or create) the durable consumer as the service does, fetch and acknowledge.
        psub = await EventConsumer(pool, brokers[name], subscription).subscribe()
        fetched: list[Msg] = []
        while event_id not in [m.headers.get("Nats-Msg-Id") for m in fetched if m.headers]:
            fetched += await psub.fetch(10, timeout=5)
        for msg in fetched:
            await msg.ack_sync(timeout=5)  # waits for the server to confirm the ack
        await psub.unsubscribe()
