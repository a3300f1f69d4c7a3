"""The scheduling service: wiring of its gRPC servicer, settings, migrations and event
subscriptions."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

import grpc

from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.runtime.consumer import Subscription
from services.runtime.server import Runtime, ServiceSpec
from services.scheduling import patients
from services.scheduling.servicer import SchedulingServicer
from services.scheduling.settings import SchedulingSettings


def subscriptions(_rt: Runtime) -> list[Subscription]:
    return patients.SUBSCRIPTIONS


def build(env: Mapping[str, str]) -> ServiceSpec:
    """The service with its settings read (and checked) from `env`."""
    settings = SchedulingSettings.from_env(env)

    def register(server: grpc.aio.Server, rt: Runtime) -> None:
        servicer = SchedulingServicer(rt.pool, rt.principals, settings)
        pb_grpc.add_SchedulingServiceServicer_to_server(servicer, server)

    return ServiceSpec(
        name="scheduling",
        grpc_service="portal.scheduling.v1.SchedulingService",
        stream="SCHEDULING",
        migrations=resources.files(__package__) / "migrations",
        register=register,
        subscriptions=subscriptions,
    )
