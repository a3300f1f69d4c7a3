"""identity as a real gRPC server in the test's process, on a freshly migrated database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

import asyncpg
import grpc

from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.identity.passwords import PasswordHasher
from services.identity.servicer import IdentityServicer
from services.identity.session_changes import SessionChanges
from services.identity.settings import IdentitySettings
from services.runtime import db
from services.runtime.principal import PASSWORD_CHANGE_ONLY, Principal
from tests.conftest import principal_verifier


def password_change_principal(patient_id: str, session_id: str) -> Principal:
    """An onsite patient's principal while the password must change (all a first sign-in
    with a temporary password allows)."""
    return Principal(
        kind="patient",
        subject=patient_id,
        realm="onsite",
        role=PASSWORD_CHANGE_ONLY,
        session_id=session_id,
    )


@asynccontextmanager
async def identity_server(
    database_url: str, changes: SessionChanges | None = None
) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    """(its pool, its address); the server and pool are closed on exit.

    changes: the session change hub it streams from (WatchSessionChanges); the test runs it,
    or not. Without one the stream answers UNAVAILABLE, so gateways do not use their caches.
    """
    pool = await db.create_pool(database_url, max_size=8)
    async with pool.acquire() as conn:
        await db.migrate(
            conn,
            db.runtime_migrations()
            + db.load_migrations("identity", resources.files("services.identity") / "migrations"),
        )
    settings = IdentitySettings.from_env({})
    server = grpc.aio.server()
    pb_grpc.add_IdentityServiceServicer_to_server(
        IdentityServicer(
            pool, principal_verifier(), PasswordHasher(settings.hash_params), settings, changes
        ),
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield pool, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)
        await pool.close()
