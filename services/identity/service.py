"""The identity service: wiring of its gRPC servicer, migrations and events."""

from __future__ import annotations

from importlib import resources

import grpc

from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.identity.servicer import IdentityServicer
from services.runtime.server import Runtime, ServiceSpec


def register(server: grpc.aio.Server, rt: Runtime) -> None:
    servicer = IdentityServicer(rt.pool, rt.principals)  # type: ignore[abstract]
    pb_grpc.add_IdentityServiceServicer_to_server(servicer, server)


SPEC = ServiceSpec(
    name="identity",
    grpc_service="portal.identity.v1.IdentityService",
    stream="IDENTITY",
    migrations=resources.files(__package__) / "migrations",
    register=register,
)
