"""The gateway's gRPC clients of identity, forms and scheduling, and their health."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from portal.forms.v1 import forms_pb2_grpc
from portal.identity.v1 import identity_pb2_grpc
from portal.scheduling.v1 import scheduling_pb2_grpc
from services.runtime.client import open_channel
from services.runtime.principal import Principal, PrincipalCodec

# The health name each backend reports SERVING on while it can serve requests.
SERVICE_NAMES = {
    "identity": "portal.identity.v1.IdentityService",
    "forms": "portal.forms.v1.FormsService",
    "scheduling": "portal.scheduling.v1.SchedulingService",
}

# Calls the gateway makes on its own behalf (signing in, resolving sessions).
GATEWAY = Principal(kind="service", subject="gateway")


class Backends:
    def __init__(self, addresses: dict[str, str], principal_key: str) -> None:
        self.channels = {name: open_channel(address) for name, address in addresses.items()}
        self.identity = identity_pb2_grpc.IdentityServiceStub(self.channels["identity"])
        self.forms = forms_pb2_grpc.FormsServiceStub(self.channels["forms"])
        self.scheduling = scheduling_pb2_grpc.SchedulingServiceStub(self.channels["scheduling"])
        self.codec = PrincipalCodec(principal_key)

    def auth(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        """Metadata that carries `principal` to a backend, signed."""
        return self.codec.metadata(principal)

    async def health(self) -> dict[str, dict[str, str]]:
        """Each backend's serving status and its overall status (database and broker)."""

        async def check(name: str) -> tuple[str, dict[str, str]]:
            stub = health_pb2_grpc.HealthStub(self.channels[name])
            result = {}
            for key, service in (("serving", SERVICE_NAMES[name]), ("overall", "")):
                try:
                    reply = await stub.Check(
                        health_pb2.HealthCheckRequest(service=service), timeout=1.0
                    )
                    result[key] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                except grpc.aio.AioRpcError as exc:
                    result[key] = exc.code().name
            return name, result

        return dict(await asyncio.gather(*(check(name) for name in self.channels)))

    async def close(self) -> None:
        await asyncio.gather(*(channel.close(grace=None) for channel in self.channels.values()))
