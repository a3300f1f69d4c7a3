"""Scheduling through the real processes (the stack of portal.running_stack).

* Find Available p95 at 100 providers x 90-day horizon with 60% of the times booked, as a
  patient asks it (the portal's Find Available button: first page, 20 times).
* Booking throughput vs raw PostgreSQL booking transactions under the same exclusion
  constraint on the same table, at the same concurrency: rounds alternate between raw and the
  clients (raw, gateway, gRPC, raw, ...) and the medians are compared, so the noise of a shared
  machine hits all of them.
* CONTESTED bookings of overlapping times on a 5-minute grid through the gateway, then a SQL
  self-join counts overlapping appointments that hold time (must be 0).
* Staff book only for patients scheduling knows: setup puts KNOWN_PATIENTS ids in its patients
  projection by SQL (as their registrations' events would), and each booking takes the next.

Calls reach scheduling through a `Client`. `GatewayClient` is the product's path: HTTP with
keep-alive to the gateway (a patient's Bearer token for GET /api/v1/portal/availability; a
staff Bearer token and an Idempotency-Key for POST /api/v1/appointments), which resolves the
session with identity and calls scheduling over gRPC. `GrpcClient` calls the
scheduling process directly with signed principals (the service alone, labelled "grpc_").
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import aiohttp
import asyncpg
import grpc
import psutil
from google.protobuf.timestamp_pb2 import Timestamp

from portal.scheduling.v1 import scheduling_pb2 as pb
from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.devstack.stack import Stack
from services.runtime import db
from services.runtime.principal import Principal, PrincipalSigner
from tests.bench import raw_composite
from tests.bench.common import median, percentile
from tests.bench.portal import (
    PASSWORD,
    cpu_seconds,
    patient_token,
    postgres_backends,
    raw_composite_on,
    running_stack,
)
from tests.conftest import principal_signer

DESK = Principal(kind="staff", subject=str(uuid.uuid4()), role="front_desk", name="bench")
# Sets up the providers and types (admin only, services/scheduling/roles.py).
ADMIN = Principal(kind="staff", subject=str(uuid.uuid4()), role="admin", name="bench")
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
# Patients staff book for: scheduling books only for patients it knows, so setup puts these in
# its projection (one statement) and each booking takes the next (around again when used up).
# Not more: with 100,000 the rounds measured 2.0-2.2 ms of PostgreSQL CPU per booking, with
# 20,000 1.4-1.6 ms (two runs each); the larger setup's writes, not booking, seem to cost it.
KNOWN_PATIENTS = 20_000
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


class Refused(Exception):
    """Any other refusal or failure (must not happen in the bench)."""


class Booker(Protocol):
    async def book(
        self, patient_id: str, type_id: str, provider_id: str, start: datetime, key: str
    ) -> None:
        """Book as front-desk staff; raises Taken when the time is not free."""
        ...


class Client(Booker, Protocol):
    async def find(self, type_id: str, limit: int) -> list[tuple[str, datetime]]:
        """(provider id, start) of the first `limit` free times, as a patient sees them."""
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
            raise Refused(f"{exc.code().name}: {exc.details()}") from None


class GatewayClient:
    """HTTP to the gateway on pooled keep-alive connections, as the portal and API clients call
    it: the patient's Bearer token for Find Available, a staff one for booking."""

    def __init__(self, base: str, http: aiohttp.ClientSession, staff: str, patient: str) -> None:
        self.base = base
        self.http = http
        self.staff = {"Authorization": f"Bearer {staff}"}
        self.patient = {"Authorization": f"Bearer {patient}"}

    async def find(self, type_id: str, limit: int) -> list[tuple[str, datetime]]:
        async with self.http.get(
            f"{self.base}/api/v1/portal/availability",
            params={"appointment_type_id": type_id, "limit": str(limit)},
            headers=self.patient,
        ) as reply:
            found = await reply.json()
            if reply.status != 200:
                raise Refused(f"availability answered {reply.status}: {found}")
        return [(s["provider_id"], datetime.fromisoformat(s["start"])) for s in found["slots"]]

    async def book(
        self, patient_id: str, type_id: str, provider_id: str, start: datetime, key: str
    ) -> None:
        async with self.http.post(
            f"{self.base}/api/v1/appointments",
            json={
                "patient_id": patient_id,
                "appointment_type_id": type_id,
                "provider_id": provider_id,
                "start": start.isoformat(),
            },
            headers={**self.staff, "Idempotency-Key": key},
        ) as reply:
            answer = await reply.read()
            if reply.status == 201:
                return
            if reply.status == 409 and b'"SLOT_TAKEN"' in answer:
                raise Taken
            raise Refused(f"booking answered {reply.status}: {answer[:300]!r}")

    @classmethod
    @asynccontextmanager
    async def signed_in(cls, stack: Stack) -> AsyncIterator[GatewayClient]:
        """Signed in through the gateway: the admin's staff session and a portal patient's."""
        base = stack.gateway_url
        patient = await patient_token(stack)
        connector = aiohttp.TCPConnector(limit=2 * CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.post(
                f"{base}/api/v1/staff/sessions", json={"username": "admin", "password": PASSWORD}
            ) as reply:
                session = await reply.json()
                if reply.status != 201:
                    raise RuntimeError(f"staff sign-in answered {reply.status}: {session}")
            yield cls(base, http, session["token"], patient)


class CompositeClient:
    """The raw composite's booking (raw_composite.py): aiohttp front, one grpc.aio call, one
    INSERT under the same constraint; the frameworks' and hops' share of a booking."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    async def book(
        self, patient_id: str, type_id: str, provider_id: str, start: datetime, key: str
    ) -> None:
        minutes = int(SLOT.total_seconds() // 60)
        asked = {"provider_id": provider_id, "appointment_type_id": type_id}
        async with self.http.post(
            self.url, json={**asked, "start": start.isoformat(), "duration_minutes": minutes}
        ) as reply:
            answer = await reply.read()
            if reply.status == 201:
                return
            if reply.status == 409:
                raise Taken
            raise Refused(f"raw composite answered {reply.status}: {answer[:300]!r}")

    @classmethod
    @asynccontextmanager
    async def running(
        cls, database_url: str
    ) -> AsyncIterator[tuple[CompositeClient, dict[str, psutil.Process]]]:
        """The composite's two processes on `database_url`; the client and the processes."""
        async with (
            raw_composite_on(database_url) as composite,
            grpc.aio.insecure_channel(composite.backend_address) as channel,
        ):
            await asyncio.wait_for(channel.channel_ready(), 30)
            connector = aiohttp.TCPConnector(limit=2 * CONCURRENCY)
            async with aiohttp.ClientSession(connector=connector) as http:
                await answers(http, f"{composite.base}/")
                yield (
                    cls(f"{composite.base}{raw_composite.BOOK_PATH}", http),
                    {"composite_front": composite.front, "composite_backend": composite.backend},
                )


async def answers(http: aiohttp.ClientSession, url: str) -> None:
    """Wait until an HTTP server answers at `url` (any status)."""
    for _ in range(300):
        try:
            async with http.get(url):
                return
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


async def put_known(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> None:
    """Patients in scheduling's projection, as their registrations' events would put them."""
    await conn.execute(
        "INSERT INTO patients (id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING",
        ids,
        timeout=600,
    )


async def known_patients(conn: asyncpg.Connection, count: int) -> Iterator[str]:
    """`count` new patient ids in scheduling's projection, as their registrations would put
    them (one statement; no patient is registered with identity for a booking)."""
    ids = [uuid.uuid4() for _ in range(count)]
    await put_known(conn, ids)
    return itertools.cycle([str(i) for i in ids])  # one per booking in turn


@dataclass
class Setup:
    find_type: str  # 100 providers, 60% booked
    book_type: str  # offered by the booking providers, whose hours are the whole day
    service_providers: list[str]  # booked through the service
    raw_providers: list[str]  # booked by raw transactions
    contested_type: str  # 30 minutes on a 5-minute grid, three providers
    patients: Iterator[str]  # whom staff book for
    # Whom the contested bookings are for: one each, none booked elsewhere (a patient cannot
    # hold two appointments at once, so a reused one could be refused for that instead).
    contested_patients: Iterator[str]
    # Where each side's next booking goes (kept across clients, so none books a taken time).
    times: dict[str, Times] = field(default_factory=dict)

    def next_times(self, side: str, providers: list[str]) -> Times:
        return self.times.setdefault(side, Times(providers))


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
    md = principal_signer().metadata(ADMIN)
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
        patients = await known_patients(conn, KNOWN_PATIENTS)
        contested_patients = await known_patients(conn, CONTESTED)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return Setup(
        find_type,
        book_type,
        booking[:BOOKING_PROVIDERS],
        booking[BOOKING_PROVIDERS:],
        contested_type,
        patients,
        contested_patients,
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


@dataclass
class Processes:
    """Whose CPU time a round counts: the stack's processes, this one (the clients, and the raw
    side's own Python) and the PostgreSQL backends serving the stack's databases."""

    stack: dict[str, psutil.Process]
    databases: list[str]

    async def groups(self) -> dict[str, list[psutil.Process]]:
        found = {name: [p] for name, p in self.stack.items()}
        found["bench"] = [psutil.Process()]
        found["postgres"] = [p for url in self.databases for p in await postgres_backends(url)]
        return found


@dataclass
class Round:
    rate: float
    cpu_ms: dict[str, float]  # per booking, by process group


async def rate_round(book_one: Callable[[], Awaitable[None]], processes: Processes) -> Round:
    """Bookings per second of CONCURRENCY loops for ROUND_SECONDS, and CPU ms per booking."""
    groups = await processes.groups()
    before = {name: cpu_seconds(ps) for name, ps in groups.items()}
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
    elapsed = time.perf_counter() - began
    cpu = {name: (cpu_seconds(ps) - before[name]) * 1000 / done for name, ps in groups.items()}
    return Round(done / elapsed, cpu)


async def booking_rates(
    clients: dict[str, Booker], setup: Setup, database_url: str, processes: Processes
) -> dict[str, list[Round]]:
    """Rounds of bookings through each client, and of raw booking transactions."""
    service_times = setup.next_times("service", setup.service_providers)
    raw_times = setup.next_times("raw", setup.raw_providers)

    def service_booking(client: Booker) -> Callable[[], Awaitable[None]]:
        async def book_one() -> None:
            provider, start = service_times.next()
            await client.book(
                next(setup.patients), setup.book_type, provider, start, key=uuid.uuid4().hex
            )

        return book_one

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

    sides = {name: service_booking(client) for name, client in clients.items()}
    rounds: dict[str, list[Round]] = {"raw": [], **{name: [] for name in sides}}
    try:
        # Warm-up: connections, prepared statements, caches.
        await rate_round(raw_booking, processes)
        for book_one in sides.values():
            await rate_round(book_one, processes)
        for _ in range(ROUNDS):
            rounds["raw"].append(await rate_round(raw_booking, processes))
            for name, book_one in sides.items():
                rounds[name].append(await rate_round(book_one, processes))
    finally:
        await pool.close()
    return rounds


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
                    next(setup.contested_patients),
                    setup.contested_type,
                    provider,
                    start,
                    uuid.uuid4().hex,
                )
                booked += 1
            except Taken:
                pass
            except Refused:
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


async def measure(
    gateway: Client,
    grpc_client: Client,
    composite: Booker,
    setup: Setup,
    database_url: str,
    processes: Processes,
) -> dict[str, float]:
    """The issue's figures through the gateway; alongside, the service's own over gRPC and the
    raw composite's (the least two Python hops add to the raw transaction on this machine)."""
    p95 = await find_latency(gateway, setup)
    grpc_p95 = await find_latency(grpc_client, setup)
    rounds = await booking_rates(
        {"gateway": gateway, "grpc": grpc_client, "composite": composite},
        setup,
        database_url,
        processes,
    )
    rate = {side: median([r.rate for r in found]) for side, found in rounds.items()}
    booked, failed, overlaps = await contested_overlaps(gateway, setup, database_url)
    results = {
        "find_available_p95_ms": p95,
        "booking_per_s": rate["gateway"],
        "raw_booking_per_s": rate["raw"],
        "booking_ratio": rate["gateway"] / rate["raw"],
        "contested_booked": float(booked),
        "contested_errors": float(failed),
        "contested_overlaps": float(overlaps),
        "grpc_find_p95_ms": grpc_p95,
        "grpc_booking_per_s": rate["grpc"],
        "grpc_booking_ratio": rate["grpc"] / rate["raw"],
        "composite_booking_per_s": rate["composite"],
        "composite_booking_ratio": rate["composite"] / rate["raw"],
    }
    # CPU ms per booking by process (medians over the rounds); what the ratio is made of.
    for side, found in rounds.items():
        for name in found[0].cpu_ms:
            ms = median([r.cpu_ms[name] for r in found])
            if ms >= 0.005:
                results[f"{side}_cpu_ms_{name}"] = ms
    return results


def database_url(stack: Stack, service: str = "scheduling") -> str:
    return db.with_database(stack.config.database_url or "", stack.database(service))


async def run(pg_url: str, nats_url: str) -> dict[str, float]:
    async with running_stack(pg_url, None) as stack:
        address = f"127.0.0.1:{stack.config.service_ports['scheduling']}"
        # Forms and NATS count too: a booking's event reaches them on the same two cores.
        processes = Processes(
            {
                name: psutil.Process(stack.children[name].pid)
                for name in ("gateway", "identity", "scheduling", "forms")
            },
            [database_url(stack, name) for name in ("scheduling", "identity", "forms")],
        )
        if stack.nats is not None and stack.nats.proc is not None:
            processes.stack["nats"] = psutil.Process(stack.nats.proc.pid)
        async with (
            grpc.aio.insecure_channel(address) as channel,
            CompositeClient.running(database_url(stack)) as (composite, composite_processes),
        ):
            processes.stack.update(composite_processes)
            stub = pb_grpc.SchedulingServiceStub(channel)
            made = await setup(stub, database_url(stack))
            async with GatewayClient.signed_in(stack) as gateway:
                return await measure(
                    gateway, GrpcClient(stub), composite, made, database_url(stack), processes
                )
