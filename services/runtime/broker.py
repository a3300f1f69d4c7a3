"""The NATS JetStream connection of a process, kept alive across broker outages.

The first connection is retried in the background, so a service starts (and serves requests)
while the broker is down; events wait in the outbox meanwhile.

With a user, the connection authenticates as that user and its reply inboxes live under
`_INBOX.<user>.`, so a NATS account can let each service read only its own replies
(services.runtime.nats_users). Without one it connects without credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from services.runtime.backoff import Backoff

log = logging.getLogger(__name__)

# Long enough to cover a relay restart after an outage; consumers' inboxes cover the rest.
DUPLICATE_WINDOW_SECONDS = 15 * 60


def inbox_prefix(user: str | None) -> str:
    """Where the replies to a user's requests arrive (nats-py's default without a user)."""
    return f"_INBOX.{user}" if user else "_INBOX"


class BrokerUnavailable(Exception):
    """The broker is not connected right now."""


class Broker:
    def __init__(
        self,
        url: str,
        *,
        name: str,
        user: str | None = None,
        password: str | None = None,
        stream_replicas: int = 1,
    ) -> None:
        self.url = url
        self.name = name
        self.stream_replicas = stream_replicas
        self.user = user
        self._password = password
        self._nc: Client | None = None
        self._connected = asyncio.Event()
        self._connector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._connector = asyncio.create_task(self._connect_forever(), name="broker-connect")

    async def _connect_forever(self) -> None:
        backoff = Backoff()
        while True:
            try:
                self._nc = await nats.connect(
                    self.url,
                    name=self.name,
                    user=self.user,
                    password=self._password,
                    inbox_prefix=inbox_prefix(self.user),
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    error_cb=self._on_error,
                )
            except (TimeoutError, OSError, nats.errors.Error) as exc:
                log.warning("broker not reachable yet", extra={"error": type(exc).__name__})
                await asyncio.sleep(backoff.next())
            else:
                self._connected.set()
                log.info("broker connected")
                return

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        log.warning("broker disconnected")

    async def _on_reconnected(self) -> None:
        self._connected.set()
        log.info("broker reconnected")

    async def _on_error(self, exc: Exception) -> None:
        log.debug("broker error", extra={"error": type(exc).__name__})

    @property
    def connected(self) -> bool:
        return self._connected.is_set() and self._nc is not None and self._nc.is_connected

    async def wait_connected(self) -> None:
        await self._connected.wait()

    @property
    def nc(self) -> Client:
        if self._nc is None or not self._nc.is_connected:
            raise BrokerUnavailable("broker not connected")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        return self.nc.jetstream()

    async def ensure_stream(self, name: str, subjects: list[str]) -> None:
        """Create the stream, or bring its subjects, de-duplication window and replicas up to
        date (JetStream can change a stream's replica count in place)."""
        config = StreamConfig(
            name=name,
            subjects=subjects,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            num_replicas=self.stream_replicas,
        )
        try:
            await self.js.add_stream(config)
        except BadRequestError:
            await self.js.update_stream(config)

    async def close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connector
        if self._nc is not None and not self._nc.is_closed:
            # Publishes are acknowledged one by one, so nothing is in flight to drain.
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._connected.clear()
