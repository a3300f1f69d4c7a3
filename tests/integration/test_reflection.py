"""gRPC reflection answers only when enabled (real grpc.aio server and client, in process)."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.runtime.server import reflect

SERVICE = "portal.identity.v1.IdentityService"


async def services_listed(enabled: bool) -> list[str] | grpc.StatusCode:
    server = grpc.aio.server()
    reflect(server, SERVICE, enabled=enabled)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            try:
                async for reply in stub.ServerReflectionInfo(iter([request])):
                    return sorted(s.name for s in reply.list_services_response.service)
            except grpc.aio.AioRpcError as exc:
                return exc.code()
        return []
    finally:
        await server.stop(None)


@pytest.mark.parametrize(
    ("enabled", "expected"),
    [
        (
            True,
            sorted([SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]),
        ),
        (False, grpc.StatusCode.UNIMPLEMENTED),
    ],
)
async def test_reflection_only_when_enabled(
    enabled: bool, expected: list[str] | grpc.StatusCode
) -> None:
    assert await services_listed(enabled) == expected
