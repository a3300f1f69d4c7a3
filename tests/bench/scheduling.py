"""Scheduling over gRPC (in this process): Find Available latency at 100 providers x 90 days
with 60% of times booked, booking throughput vs raw PostgreSQL inserts under the same
constraint, and contested bookings checked for overlaps by a SQL self-join."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources

import asyncpg
import grpc

from portal.scheduling.v1 import scheduling_pb2 as pb
from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.runtime import db
from services.runtime.principal import Principal
from services.scheduling.servicer import SchedulingServicer
from services.scheduling.settings import SchedulingSettings
from tests.bench.common import percentile
from tests.conftest import principal_signer, principal_verifier

DESK = Principal(kind="staff", subject=str(uuid.uuid4()), role="front_desk", name="bench")
PROVIDERS = 100
DAYS = 90
BOOKED = 0.6
SEARCHES = 200
BOOKINGS = 200
CONTESTED = 2000
CONCURRENCY = 16


@asynccontextmanager
async def service(
    pg_url: str,
) -> AsyncIterator[tuple[pb_grpc.SchedulingServiceAsyncStub, asyncpg.Pool]]:
    name = f"bench_sched_{uuid.uuid4().hex[:8]}"
    await db.ensure_database(pg_url, name)
    pool = await db.create_pool(db.with_database(pg_url, name), max_size=CONCURRENCY)
    async with pool.acquire() as conn:
        await db.migrate(
            conn,
            db.runtime_migrations()
            + db.load_migrations(
                "scheduling", resources.files("services.scheduling") / "migrations"
            ),
        )
    server = grpc.aio.server()
    settings = SchedulingSettings.from_env({"PORTAL_CLINIC_TIMEZONE": "Europe/Berlin"})
    pb_grpc.add_SchedulingServiceServicer_to_server(
        SchedulingServicer(pool, principal_verifier(), settings), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.SchedulingServiceStub(channel), pool
    finally:
        await channel.close(grace=None)
        await server.stop(None)
        await pool.close()
        admin = await asyncpg.connect(pg_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def setup(stub: pb_grpc.SchedulingServiceAsyncStub, pool: asyncpg.Pool) -> pb.AppointmentType:
    md = principal_signer().metadata(DESK)
    weekly = [
        pb.WeeklyRange(weekday=d, start=s, end=e)  # type: ignore[arg-type]
        for d in range(1, 8)
        for s, e in (("08:00", "12:00"), ("13:00", "17:00"))
    ]
    ids = []
    for n in range(PROVIDERS):
        made = await stub.CreateProvider(
            pb.CreateProviderRequest(display_name=f"P{n}"), metadata=md
        )
        await stub.ReplaceWorkingHours(
            pb.ReplaceWorkingHoursRequest(provider_id=made.id, weekly=weekly), metadata=md
        )
        ids.append(made.id)
    kind = await stub.CreateAppointmentType(
        pb.CreateAppointmentTypeRequest(
            fields=pb.AppointmentTypeFields(
                name="Follow-up",
                duration_minutes=20,
                minimum_notice_minutes=0,
                horizon_days=DAYS,
                bookable_online=True,
                provider_ids=ids,
            )
        ),
        metadata=md,
    )
    # 60% of every provider's 20-minute times (08:00-16:00 UTC), written by one statement.
    async with pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO appointments (id, patient_id, provider_id, appointment_type_id,
                   starts_at, ends_at, blocked, status)
               SELECT gen_random_uuid(), gen_random_uuid(), p, $2, s, s + interval '20 minutes',
                      tstzrange(s, s + interval '20 minutes'), 'booked'
               FROM unnest($1::uuid[]) AS p,
                    generate_series(date_trunc('day', now()), date_trunc('day', now())
                        + make_interval(days => $3), interval '1 day') AS d,
                    generate_series(d + interval '8 hours', d + interval '15 hours 40 minutes',
                        interval '20 minutes') AS s
               WHERE random() < $4""",
            [uuid.UUID(i) for i in ids],
            uuid.UUID(kind.id),
            DAYS,
            BOOKED,
            timeout=600,
        )
        await conn.execute("ANALYZE appointments")
    return kind


async def find_latency(stub: pb_grpc.SchedulingServiceAsyncStub, kind: pb.AppointmentType) -> float:
    md = principal_signer().metadata(DESK)
    timings = []
    for _ in range(SEARCHES):
        began = time.perf_counter()
        await stub.FindAvailability(
            pb.FindAvailabilityRequest(appointment_type_id=kind.id, limit=20), metadata=md
        )
        timings.append((time.perf_counter() - began) * 1000)
    return percentile(timings, 95)


async def booking_rates(
    stub: pb_grpc.SchedulingServiceAsyncStub, pool: asyncpg.Pool, kind: pb.AppointmentType
) -> tuple[float, float]:
    """Bookings per second through gRPC, and raw INSERTs per second under the same constraint."""
    md = principal_signer().metadata(DESK)
    found = await stub.FindAvailability(
        pb.FindAvailabilityRequest(appointment_type_id=kind.id, limit=BOOKINGS), metadata=md
    )
    slots = list(found.slots)
    queue = asyncio.Queue[pb.Slot]()
    for slot in slots:
        queue.put_nowait(slot)

    async def worker() -> None:
        while not queue.empty():
            slot = queue.get_nowait()
            await stub.BookAppointment(
                pb.BookAppointmentRequest(
                    patient_id=str(uuid.uuid4()),
                    appointment_type_id=kind.id,
                    provider_id=slot.provider_id,
                    start=slot.start,
                ),
                metadata=md,
            )

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    service_rate = len(slots) / (time.perf_counter() - began)

    far = datetime.now(UTC) + timedelta(days=400)
    raw = asyncio.Queue[int]()
    for n in range(len(slots)):
        raw.put_nowait(n)

    async def raw_worker() -> None:
        while not raw.empty():
            n = raw.get_nowait()
            start = far + timedelta(minutes=20 * n)
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    """INSERT INTO appointments (id, patient_id, provider_id, appointment_type_id,
                           starts_at, ends_at, blocked, status)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, 'booked')""",
                    uuid.uuid4(),
                    uuid.uuid4(),
                    uuid.UUID(slots[0].provider_id),
                    uuid.UUID(kind.id),
                    start,
                    start + timedelta(minutes=20),
                    asyncpg.Range(start, start + timedelta(minutes=20)),
                )

    began = time.perf_counter()
    await asyncio.gather(*(raw_worker() for _ in range(CONCURRENCY)))
    return service_rate, len(slots) / (time.perf_counter() - began)


async def contested_overlaps(stub: pb_grpc.SchedulingServiceAsyncStub, pool: asyncpg.Pool) -> int:
    """CONTESTED bookings of a few overlapping 5-minute-grid times; return overlapping pairs."""
    md = principal_signer().metadata(DESK)
    kinds = await stub.ListAppointmentTypes(pb.ListAppointmentTypesRequest(), metadata=md)
    providers = kinds.items[0].provider_ids[:3]
    fine = await stub.CreateAppointmentType(
        pb.CreateAppointmentTypeRequest(
            fields=pb.AppointmentTypeFields(
                name="Contested",
                duration_minutes=30,
                slot_interval_minutes=5,
                minimum_notice_minutes=0,
                bookable_online=True,
                provider_ids=providers,
            )
        ),
        metadata=md,
    )
    found = await stub.FindAvailability(
        pb.FindAvailabilityRequest(appointment_type_id=fine.id, limit=60), metadata=md
    )
    slots = list(found.slots)
    semaphore = asyncio.Semaphore(CONCURRENCY * 2)

    async def attempt() -> None:
        slot = random.choice(slots)
        async with semaphore:
            try:
                await stub.BookAppointment(
                    pb.BookAppointmentRequest(
                        patient_id=str(uuid.uuid4()),
                        appointment_type_id=fine.id,
                        provider_id=slot.provider_id,
                        start=slot.start,
                    ),
                    metadata=md,
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise

    await asyncio.gather(*(attempt() for _ in range(CONTESTED)))
    overlaps: int = await pool.fetchval(
        """SELECT count(*) FROM appointments a JOIN appointments b
           ON a.provider_id = b.provider_id AND a.id < b.id AND a.blocked && b.blocked
           WHERE a.status = 'booked' AND b.status = 'booked'"""
    )
    return overlaps


async def run(pg_url: str, nats_url: str) -> dict[str, float]:
    async with service(pg_url) as (stub, pool):
        kind = await setup(stub, pool)
        p95 = await find_latency(stub, kind)
        service_rate, raw_rate = await booking_rates(stub, pool, kind)
        overlaps = await contested_overlaps(stub, pool)
    return {
        "find_available_p95_ms": p95,
        "booking_per_s": service_rate,
        "raw_insert_per_s": raw_rate,
        "booking_ratio": service_rate / raw_rate,
        "contested_overlaps": float(overlaps),
    }
