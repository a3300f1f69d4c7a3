"""The scheduling service: wiring of its gRPC servicer and migrations."""

from __future__ import annotations

from importlib import resources

import grpc

from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.runtime.server import Runtime, ServiceSpec
from services.scheduling.servicer import SchedulingServicer


def register(server: grpc.aio.Server, rt: Runtime) -> None:
    pb_grpc.add_SchedulingServiceServicer_to_server(
        SchedulingServicer(rt.pool, rt.principals), server
    )


SPEC = ServiceSpec(
    name="scheduling",
    grpc_service="portal.scheduling.v1.SchedulingService",
    stream="SCHEDULING",
    migrations=resources.files(__package__) / "migrations",
    register=register,
)
