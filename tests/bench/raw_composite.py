"""The raw composite: the least a gateway-plus-service request can cost on this machine.

Two processes, as in the real stack, on the event loop the services run on: `front` is an
aiohttp app whose handlers make one grpc.aio call each to `backend`. Its read runs one SELECT and
one audit INSERT on its own database (asyncpg pool) and answers a protobuf message; its booking
runs the raw booking transaction of the scheduling bench (one INSERT under the appointments'
exclusion constraint) on the scheduling database. No sessions, principals, middlewares,
telemetry, audit chain, events or logging: what is left is the frameworks, the network hops and
PostgreSQL.

python -m tests.bench.raw_composite backend <listen> <database url>
python -m tests.bench.raw_composite front <port> <backend address>
"""

from __future__ import annotations

import asyncio
import signal
import struct
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
from aiohttp import web

from portal.identity.v1 import identity_pb2 as pb
from services.runtime import event_loop

METHOD = "/bench.Raw/Read"
PATH = "/raw/me"
BOOK_METHOD = "/bench.Raw/Book"
BOOK_PATH = "/raw/appointments"
# A booking on the wire to the backend: provider, appointment type, start (epoch s), minutes.
BOOKING = struct.Struct("!16s16sqi")
BOOK = """INSERT INTO appointments (id, patient_id, provider_id, appointment_type_id,
              starts_at, ends_at, blocked, status)
          VALUES ($1, $2, $3, $4, $5, $6, tstzrange($5, $6), 'booked')
          ON CONFLICT DO NOTHING RETURNING id"""
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

    async def book(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        provider, kind, start, minutes = BOOKING.unpack(request)
        starts = datetime.fromtimestamp(start, UTC)
        async with pool.acquire() as conn:
            booked = await conn.fetchval(
                BOOK,
                uuid.uuid4(),
                uuid.uuid4(),
                uuid.UUID(bytes=provider),
                uuid.UUID(bytes=kind),
                starts,
                starts + timedelta(minutes=minutes),
            )
        if booked is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "taken")
        return bytes(booked.bytes)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "bench.Raw",
                {
                    "Read": grpc.unary_unary_rpc_method_handler(read),
                    "Book": grpc.unary_unary_rpc_method_handler(book),
                },
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

    async def book(request: web.Request) -> web.Response:
        asked = await request.json()
        start = datetime.fromisoformat(asked["start"])
        wire = BOOKING.pack(
            uuid.UUID(asked["provider_id"]).bytes,
            uuid.UUID(asked["appointment_type_id"]).bytes,
            int(start.timestamp()),
            int(asked["duration_minutes"]),
        )
        call = request.app[channel_key].unary_unary(BOOK_METHOD, None, None)
        try:
            booked = uuid.UUID(bytes=await call(wire, timeout=5))
        except grpc.aio.AioRpcError as exc:
            taken = exc.code() == grpc.StatusCode.FAILED_PRECONDITION
            return web.json_response({"code": exc.code().name}, status=409 if taken else 503)
        return web.json_response({"id": str(booked), "start": start.isoformat()}, status=201)

    app.cleanup_ctx.append(channel_ctx)
    app.router.add_get(PATH, me)
    app.router.add_post(BOOK_PATH, book)
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
        event_loop.run(backend(where, target))
    else:
        web.run_app(
            front_app(target),
            host="127.0.0.1",
            port=int(where),
            print=None,
            access_log=None,
            loop=event_loop.new_event_loop(),
        )


if __name__ == "__main__":
    main(sys.argv[1:])
