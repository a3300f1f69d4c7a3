"""The identity service: wiring of its gRPC servicer, migrations and the first admin."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import grpc

from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.identity import staff
from services.identity.passwords import PasswordHasher
from services.identity.servicer import IdentityServicer
from services.identity.settings import IdentitySettings
from services.runtime.server import Runtime, ServiceSpec

# argon2 releases the GIL: one hashing thread per core runs them truly in parallel.
_hasher = PasswordHasher(
    IdentitySettings.from_env().hash_params,
    executor=ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="argon2"),
)


def register(server: grpc.aio.Server, rt: Runtime) -> None:
    settings = IdentitySettings.from_env()
    servicer = IdentityServicer(rt.pool, rt.principals, _hasher, settings)
    pb_grpc.add_IdentityServiceServicer_to_server(servicer, server)


async def on_start(rt: Runtime) -> None:
    await _hasher.warm_up()
    settings = IdentitySettings.from_env()
    if settings.admin_password:
        await staff.bootstrap_admin(rt.pool, _hasher, settings.admin_password)


SPEC = ServiceSpec(
    name="identity",
    grpc_service="portal.identity.v1.IdentityService",
    stream="IDENTITY",
    migrations=resources.files(__package__) / "migrations",
    register=register,
    on_start=on_start,
)
