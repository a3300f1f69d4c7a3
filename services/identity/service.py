"""The identity service: wiring of its gRPC servicer, migrations and the first admin."""

from __future__ import annotations

import os
from collections.abc import Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import grpc

from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.identity import staff
from services.identity.passwords import PasswordHasher
from services.identity.servicer import IdentityServicer
from services.identity.session_changes import SessionChanges, connector
from services.identity.settings import IdentitySettings
from services.runtime.server import Runtime, ServiceSpec


def build(env: Mapping[str, str]) -> ServiceSpec:
    """The service as `env` configures it; raises ConfigError on a bad setting."""
    settings = IdentitySettings.from_env(env)
    # argon2 releases the GIL: one hashing thread per core runs them truly in parallel.
    hasher = PasswordHasher(
        settings.hash_params,
        executor=ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="argon2"),
    )

    changes = SessionChanges()

    def register(server: grpc.aio.Server, rt: Runtime) -> None:
        servicer = IdentityServicer(rt.pool, rt.principals, hasher, settings, changes)
        pb_grpc.add_IdentityServiceServicer_to_server(servicer, server)

    async def on_start(rt: Runtime) -> None:
        await hasher.warm_up()
        if settings.admin_password:
            await staff.bootstrap_admin(rt.pool, hasher, settings.admin_password)

    def background(rt: Runtime) -> list[Coroutine[Any, Any, None]]:
        return [changes.run(connector(rt.settings.database_url))]

    return ServiceSpec(
        name="identity",
        grpc_service="portal.identity.v1.IdentityService",
        stream="IDENTITY",
        migrations=resources.files(__package__) / "migrations",
        register=register,
        on_start=on_start,
        background=background,
    )
