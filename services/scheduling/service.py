"""The scheduling service: wiring of its gRPC servicer and migrations."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

import grpc

from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.runtime.server import Runtime, ServiceSpec
from services.scheduling.servicer import SchedulingServicer


def register(server: grpc.aio.Server, rt: Runtime) -> None:
    pb_grpc.add_SchedulingServiceServicer_to_server(
        SchedulingServicer(rt.pool, rt.principals), server
    )


def build(env: Mapping[str, str]) -> ServiceSpec:
    """The service; it has no settings of its own beyond the runtime's."""
    return ServiceSpec(
        name="scheduling",
        grpc_service="portal.scheduling.v1.SchedulingService",
        stream="SCHEDULING",
        migrations=resources.files(__package__) / "migrations",
        register=register,
    )
