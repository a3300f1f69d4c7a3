"""Scheduling through the real service process (the stack of portal.running_stack).

* Find Available p95 at 100 providers x 90-day horizon with 60% of the times booked, as a
  patient asks it (the portal's Find Available button: first page, 20 times).
* Booking throughput vs raw PostgreSQL booking transactions under the same exclusion
  constraint on the same table: rounds alternate between the two and the medians are compared,
  so the noise of a shared machine hits both.
* CONTESTED bookings of overlapping times on a 5-minute grid, then a SQL self-join counts
  overlapping appointments that hold time (must be 0).

Calls reach the service through a `Client`; `GrpcClient` calls the scheduling process directly.
A through-the-gateway variant is one more `Client` (HTTP to /api/v1/availability and
/api/v1/appointments with a staff or patient token) passed to `measure`.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import asyncpg
import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from portal.scheduling.v1 import scheduling_pb2 as pb
from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.devstack.stack import Stack
from services.runtime import db
from services.runtime.principal import Principal, PrincipalSigner
from tests.bench.common import median, percentile
from tests.bench.portal import running_stack
from tests.conftest import principal_signer

DESK = Principal(kind="staff", subject=str(uuid.uuid4()), role="front_desk", name="bench")
PATIENT = Principal(kind="patient", subject=str(uuid.uuid4()), realm="onsite")
PROVIDERS = 100
DAYS = 90
BOOKED = 0.6
SEARCHES = 300
CONCURRENCY = 16
ROUND_SECONDS = 3.0
ROUNDS = 5
BOOKING_PROVIDERS = 8  # each side books its own providers' days, one after another
CONTESTED = 10_000
SLOT = timedelta(minutes=20)


class Credentials:
    """A principal's metadata, signed again before it expires (as the gateway signs per call)."""

    def __init__(self, principal: Principal, signer: PrincipalSigner) -> None:
        self.principal = principal
        self.signer = signer
        self._signed = 0.0
        self._metadata: tuple[tuple[str, str], ...] = ()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        if time.monotonic() - self._signed > 60:
            self._metadata = self.signer.metadata(self.principal)
            self._signed = time.monotonic()
        return self._metadata


class Taken(Exception):
    """The time was taken (the service's SLOT_TAKEN, a 409 through the gateway)."""


class Client(Protocol):
    async def find(self, type_id: str, limit: int) -> list[tuple[str, datetime]]:
        """(provider id, start) of the first `limit` free times, as a patient sees them."""
        ...

    async def book(
        self, patient_id: str, type_id: str, provider_id: str, start: datetime, key: str
    ) -> None:
        """Book as front-desk staff; raises Taken when the time is not free."""
        ...


def stamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


class GrpcClient:
    def __init__(self, stub: pb_grpc.SchedulingServiceAsyncStub) -> None:
        signer = principal_signer()
        self.stub = stub
        self.desk = Credentials(DESK, signer)
        self.patient = Credentials(PATIENT, signer)

    async def find(self, type_id: str, limit: int) -> list[tuple[str, datetime]]:
        found = await self.stub.FindAvailability(
            pb.FindAvailabilityRequest(appointment_type_id=type_id, limit=limit),
            metadata=self.patient.metadata(),
        )
        return [(s.provider_id, s.start.ToDatetime(tzinfo=UTC)) for s in found.slots]

    async def book(
        self, patient_id: str, type_id: str, provider_id: str, start: datetime, key: str
    ) -> None:
        try:
            await self.stub.BookAppointment(
                pb.BookAppointmentRequest(
                    patient_id=patient_id,
                    appointment_type_id=type_id,
                    provider_id=provider_id,
                    start=stamp(start),
                    idempotency_key=key,
                ),
                metadata=self.desk.metadata(),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise Taken from None
            raise


@dataclass
class Setup:
    find_type: str  # 100 providers, 60% booked
    book_type: str  # offered by the booking providers, whose hours are the whole day
    service_providers: list[str]  # booked through the service
    raw_providers: list[str]  # booked by raw transactions
    contested_type: str  # 30 minutes on a 5-minute grid, three providers


async def make_providers(
    stub: pb_grpc.SchedulingServiceAsyncStub,
    md: tuple[tuple[str, str], ...],
    count: int,
    prefix: str,
    weekly: list[pb.WeeklyRange],
) -> list[str]:
    ids = []
    for n in range(count):
        made = await stub.CreateProvider(
            pb.CreateProviderRequest(display_name=f"{prefix}{n}"), metadata=md
        )
        await stub.ReplaceWorkingHours(
            pb.ReplaceWorkingHoursRequest(provider_id=made.id, weekly=weekly), metadata=md
        )
        ids.append(made.id)
    return ids


async def make_type(
    stub: pb_grpc.SchedulingServiceAsyncStub,
    md: tuple[tuple[str, str], ...],
    name: str,
    providers: list[str],
    **fields: int,
) -> str:
    kind = await stub.CreateAppointmentType(
        pb.CreateAppointmentTypeRequest(
            fields=pb.AppointmentTypeFields(
                name=name,
                minimum_notice_minutes=0,
                bookable_online=True,
                provider_ids=providers,
                **fields,
            )
        ),
        metadata=md,
    )
    return str(kind.id)


def week(*ranges: tuple[str, str]) -> list[pb.WeeklyRange]:
    return [
        pb.WeeklyRange(weekday=d, start=s, end=e)  # type: ignore[arg-type]
        for d in range(1, 8)
        for s, e in ranges
    ]


async def setup(stub: pb_grpc.SchedulingServiceAsyncStub, database_url: str) -> Setup:
    md = principal_signer().metadata(DESK)
    clinic = await make_providers(
        stub, md, PROVIDERS, "P", week(("08:00", "12:00"), ("13:00", "17:00"))
    )
    find_type = await make_type(
        stub, md, "Follow-up", clinic, duration_minutes=20, horizon_days=DAYS
    )
    booking = await make_providers(stub, md, 2 * BOOKING_PROVIDERS, "B", week(("00:00", "24:00")))
    book_type = await make_type(
        stub, md, "Bench booking", booking, duration_minutes=20, horizon_days=365
    )
    contested_type = await make_type(
        stub,
        md,
        "Contested",
        clinic[:3],
        duration_minutes=30,
        slot_interval_minutes=5,
        horizon_days=DAYS,
    )
    # 60% of every clinic provider's 20-minute times (08:00-16:00 UTC), one statement.
    conn = await asyncpg.connect(database_url)
    try:
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
            [uuid.UUID(i) for i in clinic],
            uuid.UUID(find_type),
            DAYS,
            BOOKED,
            timeout=600,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return Setup(
        find_type,
        book_type,
        booking[:BOOKING_PROVIDERS],
        booking[BOOKING_PROVIDERS:],
        contested_type,
    )


async def find_latency(client: Client, setup: Setup) -> float:
    """p95 in ms of sequential first-page searches, after a warm-up."""
    timings = []
    for n in range(SEARCHES + 20):
        began = time.perf_counter()
        await client.find(setup.find_type, 20)
        if n >= 20:
            timings.append((time.perf_counter() - began) * 1000)
    return percentile(timings, 95)


class Times:
    """Free times for bookings: provider by provider, 20 minutes apart from tomorrow on."""

    def __init__(self, providers: list[str]) -> None:
        self.providers = providers
        self.base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
        self.n = 0

    def next(self) -> tuple[str, datetime]:
        provider = self.providers[self.n % len(self.providers)]
        start = self.base + SLOT * (self.n // len(self.providers))
        self.n += 1
        return provider, start


async def rate_round(book_one: Callable[[], Awaitable[None]]) -> float:
    """Bookings per second of CONCURRENCY loops for ROUND_SECONDS."""
    done = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ROUND_SECONDS

    async def worker() -> None:
        nonlocal done
        while loop.time() < deadline:
            await book_one()
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - began)


async def booking_rates(client: Client, setup: Setup, database_url: str) -> tuple[float, float]:
    """Median bookings per second through the service, and of raw booking transactions."""
    service_times = Times(setup.service_providers)
    raw_times = Times(setup.raw_providers)

    async def service_booking() -> None:
        provider, start = service_times.next()
        await client.book(str(uuid.uuid4()), setup.book_type, provider, start, key=uuid.uuid4().hex)

    pool = await db.create_pool(database_url, max_size=CONCURRENCY)
    type_id = uuid.UUID(setup.book_type)

    async def raw_booking() -> None:
        # The least a booking can be: one transaction inserting the row under the constraint.
        provider, start = raw_times.next()
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO appointments (id, patient_id, provider_id, appointment_type_id,
                       starts_at, ends_at, blocked, status)
                   VALUES ($1, $2, $3, $4, $5, $6, tstzrange($5, $6), 'booked')""",
                uuid.uuid4(),
                uuid.uuid4(),
                uuid.UUID(provider),
                type_id,
                start,
                start + SLOT,
            )

    try:
        await rate_round(raw_booking)  # warm-up: connections, prepared statements, caches
        await rate_round(service_booking)
        raws, services = [], []
        for _ in range(ROUNDS):
            raws.append(await rate_round(raw_booking))
            services.append(await rate_round(service_booking))
    finally:
        await pool.close()
    return median(services), median(raws)


async def contested_overlaps(
    client: Client, setup: Setup, database_url: str
) -> tuple[int, int, int]:
    """CONTESTED bookings of a few overlapping 5-minute-grid times: (booked, failed otherwise
    than "taken", overlapping pairs)."""
    slots = await client.find(setup.contested_type, 60)
    semaphore = asyncio.Semaphore(CONCURRENCY * 2)
    booked = failed = 0

    async def attempt() -> None:
        nonlocal booked, failed
        provider, start = random.choice(slots)
        async with semaphore:
            try:
                await client.book(
                    str(uuid.uuid4()), setup.contested_type, provider, start, uuid.uuid4().hex
                )
                booked += 1
            except Taken:
                pass
            except grpc.aio.AioRpcError:
                failed += 1  # counted, not raised: it must be 0, and the other figures stand

    await asyncio.gather(*(attempt() for _ in range(CONTESTED)))
    conn = await asyncpg.connect(database_url)
    try:
        overlaps: int = await conn.fetchval(
            """SELECT count(*) FROM appointments a JOIN appointments b
               ON a.provider_id = b.provider_id AND a.id < b.id AND a.blocked && b.blocked
               WHERE a.status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')
                 AND b.status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')"""
        )
    finally:
        await conn.close()
    return booked, failed, overlaps


async def measure(client: Client, setup: Setup, database_url: str) -> dict[str, float]:
    p95 = await find_latency(client, setup)
    service_rate, raw_rate = await booking_rates(client, setup, database_url)
    booked, failed, overlaps = await contested_overlaps(client, setup, database_url)
    return {
        "find_available_p95_ms": p95,
        "booking_per_s": service_rate,
        "raw_booking_per_s": raw_rate,
        "booking_ratio": service_rate / raw_rate,
        "contested_booked": float(booked),
        "contested_errors": float(failed),
        "contested_overlaps": float(overlaps),
    }


def database_url(stack: Stack) -> str:
    return db.with_database(stack.config.database_url or "", stack.database("scheduling"))


async def run(pg_url: str, nats_url: str) -> dict[str, float]:
    async with running_stack(pg_url, None) as stack:
        address = f"127.0.0.1:{stack.config.service_ports['scheduling']}"
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.SchedulingServiceStub(channel)
            made = await setup(stub, database_url(stack))
            return await measure(GrpcClient(stub), made, database_url(stack))
