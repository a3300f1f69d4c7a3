"""The raw composite: the least a gateway-plus-service read can cost on this machine.

Two processes, as in the real stack: `front` is an aiohttp app whose one handler makes one
grpc.aio call to `backend`, whose handler runs one SELECT and one audit INSERT on its own
database (asyncpg pool) and answers a protobuf message. No sessions, principals, middlewares,
telemetry or logging: what is left is the frameworks, the network hops and PostgreSQL.

python -m tests.bench.raw_composite backend <listen> <database url>
python -m tests.bench.raw_composite front <port> <backend address>
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid
from collections.abc import AsyncIterator

import asyncpg
import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb

METHOD = "/bench.Raw/Read"
PATH = "/raw/me"
SCHEMA = """
CREATE TABLE IF NOT EXISTS people (
    id uuid PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL,
    date_of_birth date NOT NULL, sex text NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor_id text NOT NULL, patient_id uuid, action text NOT NULL);
"""


async def prepare(database_url: str) -> str:
    """Create the tables and one person; returns the person's id."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(SCHEMA)
        person = uuid.uuid4()
        await conn.execute(
            "INSERT INTO people VALUES ($1, 'Raw', 'Composite', '1970-01-01', 'other')", person
        )
        return str(person)
    finally:
        await conn.close()


async def backend(listen: str, database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)

    async def read(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        person = uuid.UUID(request.decode())
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT id, first_name, last_name, date_of_birth, sex FROM people WHERE id = $1",
                person,
            )
            await conn.execute(
                "INSERT INTO audit (actor_id, patient_id, action) VALUES ($1, $2, 'read_own')",
                str(person),
                person,
            )
        if row is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such person")
        return pb.Patient(
            id=str(row["id"]),
            first_name=row["first_name"],
            last_name=row["last_name"],
            date_of_birth=row["date_of_birth"].isoformat(),
            sex=row["sex"],
        ).SerializeToString()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "bench.Raw", {"Read": grpc.unary_unary_rpc_method_handler(read)}
            )
        ]
    )
    server.add_insecure_port(listen)
    await server.start()
    await _until_signalled()
    await server.stop(1)
    await pool.close()


def front_app(backend_address: str) -> web.Application:
    app = web.Application()
    channel_key = web.AppKey("channel", grpc.aio.Channel)

    async def channel_ctx(app: web.Application) -> AsyncIterator[None]:
        app[channel_key] = grpc.aio.insecure_channel(backend_address)
        yield
        await app[channel_key].close(None)

    async def me(request: web.Request) -> web.Response:
        person = request.headers["X-Person"]
        call = request.app[channel_key].unary_unary(METHOD, None, None)
        try:
            reply = pb.Patient.FromString(await call(person.encode(), timeout=5))
        except grpc.aio.AioRpcError as exc:
            # The backend is still starting while the bench polls for readiness: answer as the
            # gateway would (503), without a traceback on the terminal.
            return web.json_response({"code": exc.code().name}, status=503)
        return web.json_response(
            {
                "id": reply.id,
                "first_name": reply.first_name,
                "last_name": reply.last_name,
                "date_of_birth": reply.date_of_birth,
                "sex": reply.sex,
            }
        )

    app.cleanup_ctx.append(channel_ctx)
    app.router.add_get(PATH, me)
    return app


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str]) -> None:
    role, where, target = argv
    if role == "backend":
        asyncio.run(backend(where, target))
    else:
        web.run_app(
            front_app(target), host="127.0.0.1", port=int(where), print=None, access_log=None
        )


if __name__ == "__main__":
    main(sys.argv[1:])
