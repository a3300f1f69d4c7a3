"""Keep identity's session change stream open and the session cache in step with it.

WATCHING (identity listens for changes now): start from an empty cache and use it. CHANGED
(a change committed, perhaps through another gateway): forget everything. The stream ending or
failing: stop using the cache (every request asks identity again) and reconnect with backoff.
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from portal.identity.v1 import identity_pb2 as pb
from services.gateway.backends import GATEWAY, Backends
from services.runtime.backoff import Backoff

log = logging.getLogger(__name__)


async def watch_sessions(backends: Backends, backoff: Backoff | None = None) -> None:
    """Run until cancelled; does nothing when the cache is switched off."""
    cache = backends.sessions
    if cache.ttl <= 0:
        return
    backoff = backoff or Backoff()
    try:
        while True:
            try:
                call = backends.identity.WatchSessionChanges(
                    pb.WatchSessionChangesRequest(), metadata=backends.auth(GATEWAY)
                )
                async for change in call:
                    if change.kind == pb.SessionChange.KIND_WATCHING:
                        cache.trust(True)
                        backoff.reset()
                        log.info("session cache in use")
                    else:
                        cache.flush()
                log.warning("session change stream ended")
            except grpc.aio.AioRpcError as exc:
                log.warning("session change stream failed", extra={"code": exc.code().name})
            cache.trust(False)
            await asyncio.sleep(backoff.next())
    finally:
        cache.trust(False)
