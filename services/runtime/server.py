"""grpc.aio server bootstrap shared by the identity, forms and scheduling services.

Health (grpc.health.v1) reports three names:
  "liveness"                              SERVING while the process runs (liveness probes)
  the service's full name, e.g.
  "portal.identity.v1.IdentityService"    SERVING while its database answers (readiness probes:
                                          a broker outage only delays events, requests still work)
  "" (overall)                            SERVING while database and broker are both ready
On SIGTERM or SIGINT every name turns NOT_SERVING, new calls are still accepted for a short drain
period (so load balancers notice), in-flight calls finish within the grace period, then the
pools close and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from services.runtime import db, event_loop, logs, outbox, telemetry
from services.runtime.broker import Broker
from services.runtime.consumer import EventConsumer, Subscription
from services.runtime.outbox import OutboxRelay
from services.runtime.principal import PrincipalVerifier
from services.runtime.settings import ConfigError, ServiceSettings

log = logging.getLogger(__name__)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Runtime:
    """What a service's handlers and event handlers are given."""

    settings: ServiceSettings
    pool: asyncpg.Pool
    broker: Broker
    principals: PrincipalVerifier


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # "identity"
    grpc_service: str  # "portal.identity.v1.IdentityService"
    stream: str  # "IDENTITY": the JetStream stream this service owns
    migrations: Traversable
    register: Callable[[grpc.aio.Server, Runtime], None]
    subscriptions: Callable[[Runtime], list[Subscription]] = field(default=lambda _rt: [])
    on_start: Callable[[Runtime], Awaitable[None]] | None = None  # after migrations, before serving
    # Tasks that run while serving; cancelled before the server stops, so that calls waiting on
    # them (streams) end instead of holding the shutdown for its whole grace period.
    background: Callable[[Runtime], list[Coroutine[Any, Any, None]]] = field(default=lambda _rt: [])
    max_message_bytes: int = 0  # the largest request it accepts; 0: gRPC's default (4 MiB)

    @property
    def subjects(self) -> list[str]:
        return [f"portal.{self.name}.>"]


def reflect(server: grpc.aio.Server, grpc_service: str, *, enabled: bool) -> None:
    """gRPC server reflection, for development only (PORTAL_GRPC_REFLECTION): it hands anyone
    who reaches the port the full API description."""
    if enabled:
        reflection.enable_server_reflection(
            [grpc_service, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )


def service_broker(spec: ServiceSpec, settings: ServiceSettings) -> Broker:
    """The service's NATS connection: its own user, its stream with the configured replicas."""
    return Broker(
        settings.nats_url,
        name=f"portal-{spec.name}",
        user=settings.nats_user,
        password=settings.nats_password,
        stream_replicas=settings.stream_replicas,
    )


def outbox_relay(spec: ServiceSpec, pool: asyncpg.Pool, broker: Broker) -> OutboxRelay:
    """The relay that publishes the service's outbox to the stream it owns."""
    return OutboxRelay(pool, broker, stream=spec.stream, subjects=spec.subjects)


async def serve(spec: ServiceSpec, settings: ServiceSettings) -> int:
    # The relay below runs in this process: the pool announces events to it (no NOTIFY).
    pool = await db.create_pool(
        settings.database_url, max_size=settings.db_pool_max, server_settings=outbox.LOCAL_WAKE
    )
    migrations = db.runtime_migrations() + db.load_migrations(spec.name, spec.migrations)
    await db.migrate_service(pool, migrations, settings.migration_database_url)
    broker = service_broker(spec, settings)
    await broker.start()
    runtime = Runtime(settings, pool, broker, PrincipalVerifier(settings.principal_public_keys))
    if spec.on_start is not None:
        await spec.on_start(runtime)

    # No SO_REUSEPORT: gRPC sets it by default, so a second server on a taken port would share
    # it silently and answer half the calls meant for the first; this way it cannot listen.
    options: list[tuple[str, int]] = [("grpc.so_reuseport", 0)]
    if spec.max_message_bytes:
        options.append(("grpc.max_receive_message_length", spec.max_message_bytes))
    server = grpc.aio.server(interceptors=telemetry.grpc_server_interceptors(), options=options)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    spec.register(server, runtime)
    reflect(server, spec.grpc_service, enabled=settings.grpc_reflection)
    try:
        server.add_insecure_port(settings.grpc_listen)
    except RuntimeError:
        log.error("cannot listen", extra={"address": settings.grpc_listen})
        await pool.close()
        await broker.close()
        return 2
    await server.start()
    await health_servicer.set("liveness", SERVING)
    log.info("serving", extra={"address": settings.grpc_listen})

    background = [asyncio.create_task(work) for work in spec.background(runtime)]
    relay = outbox_relay(spec, pool, broker)
    tasks = [
        asyncio.create_task(relay.run(), name="outbox-relay"),
        asyncio.create_task(_watch_health(spec, runtime, health_servicer), name="health"),
        *(
            asyncio.create_task(EventConsumer(pool, broker, s).run(), name=s.durable)
            for s in spec.subscriptions(runtime)
        ),
    ]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down")
    await health_servicer.enter_graceful_shutdown()
    await asyncio.sleep(settings.shutdown_drain)
    await _cancel(background)
    await server.stop(settings.shutdown_grace)
    await _cancel(tasks)
    await broker.close()
    await pool.close()
    log.info("stopped")
    return 0


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _watch_health(spec: ServiceSpec, rt: Runtime, servicer: HealthServicer) -> None:
    while True:
        try:
            async with rt.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
            database_ok = True
        except Exception:
            database_ok = False
        await servicer.set(spec.grpc_service, SERVING if database_ok else NOT_SERVING)
        await servicer.set("", SERVING if database_ok and rt.broker.connected else NOT_SERVING)
        await asyncio.sleep(1.0)


def main(name: str, build: Callable[[Mapping[str, str]], ServiceSpec]) -> None:
    """Entry point of `python -m services.<name>`.

    Every setting, the runtime's and the service's own (read by `build`), is read and checked
    here before anything starts: a bad value is one line naming the variable and exit code 2.
    """
    try:
        settings = ServiceSettings.from_env(name)
        spec = build(os.environ)
    except ConfigError as exc:
        print(f"portal-{name}: {exc}", file=sys.stderr)
        sys.exit(2)
    logs.configure(spec.name, settings.log_level)
    telemetry.configure(
        spec.name, otlp_endpoint=settings.otlp_endpoint, trace_file=settings.trace_file
    )
    try:
        code = event_loop.run(serve(spec, settings))
    except (OSError, asyncpg.PostgresError) as exc:
        log.error("could not start", extra={"error": type(exc).__name__, "detail": str(exc)})
        code = 1
    finally:
        telemetry.shutdown()
    sys.exit(code)
