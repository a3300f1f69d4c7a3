"""The scheduling service: wiring of its gRPC servicer, settings and migrations."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

import grpc

from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.runtime.server import Runtime, ServiceSpec
from services.scheduling.servicer import SchedulingServicer
from services.scheduling.settings import SchedulingSettings


def register(server: grpc.aio.Server, rt: Runtime) -> None:
    servicer = SchedulingServicer(rt.pool, rt.principals, SchedulingSettings.from_env())
    pb_grpc.add_SchedulingServiceServicer_to_server(servicer, server)


def build(env: Mapping[str, str]) -> ServiceSpec:
    """The service; it has no settings of its own beyond the runtime's."""
    return ServiceSpec(
        name="scheduling",
        grpc_service="portal.scheduling.v1.SchedulingService",
        stream="SCHEDULING",
        migrations=resources.files(__package__) / "migrations",
        register=register,
    )
