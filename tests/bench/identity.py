"""Identity as a real process: sign-in throughput vs raw argon2, and search latency at 100k."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import date, timedelta

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from portal.identity.v1 import identity_pb2 as pb
from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.identity.passwords import PasswordHasher
from services.identity.settings import IdentitySettings
from services.runtime import db
from services.runtime.principal import Principal, PrincipalSigner
from tests.bench.common import median, percentile
from tests.conftest import TEST_SERVICE_ENV, free_port, principal_signer

STAFF = Principal(kind="staff", subject=str(uuid.uuid4()), role="front_desk", name="bench")
GATEWAY = Principal(kind="service", subject="gateway")
SIGN_INS = 200  # per round
ROUNDS = 5
CONCURRENCY = 8
ACCOUNTS = 16
PATIENTS = 100_000
SEARCHES = 300

FIRST = [
    "james",
    "mary",
    "robert",
    "patricia",
    "john",
    "jennifer",
    "michael",
    "linda",
    "david",
    "elizabeth",
    "william",
    "barbara",
    "richard",
    "susan",
    "joseph",
    "jessica",
    "thomas",
    "sarah",
    "charles",
    "karen",
    "christopher",
    "lisa",
    "daniel",
    "nancy",
    "matthew",
    "betty",
    "anthony",
    "margaret",
    "mark",
    "sandra",
    "donald",
    "ashley",
    "steven",
    "kimberly",
    "paul",
    "emily",
    "andrew",
    "donna",
    "joshua",
    "michelle",
    "kenneth",
    "carol",
    "kevin",
    "amanda",
]
LAST = [
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "torres",
    "nguyen",
    "hill",
    "flores",
    "green",
    "adams",
    "nelson",
    "baker",
    "hall",
    "rivera",
    "campbell",
    "mitchell",
    "carter",
    "roberts",
    "okafor",
    "kowalski",
    "lindqvist",
    "yamamoto",
    "fitzgerald",
    "abernathy",
    "castellanos",
]


@asynccontextmanager
async def identity_process(pg_url: str, nats_url: str) -> AsyncIterator[tuple[str, str]]:
    """Run `python -m services.identity` on a fresh database; yields (address, database URL)."""
    name = f"bench_identity_{uuid.uuid4().hex[:8]}"
    await db.ensure_database(pg_url, name)
    database_url = db.with_database(pg_url, name)
    port = free_port()
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_NATS_URL": nats_url,
        "PORTAL_GRPC_LISTEN": f"127.0.0.1:{port}",
        **TEST_SERVICE_ENV,
        "PORTAL_LOG_LEVEL": "WARNING",
        "PORTAL_DB_POOL_MAX": "16",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.identity"], env=env, stdout=subprocess.DEVNULL
    )
    address = f"127.0.0.1:{port}"
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(300):
                try:
                    reply = await stub.Check(
                        health_pb2.HealthCheckRequest(service="portal.identity.v1.IdentityService"),
                        timeout=1,
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                await asyncio.sleep(0.1)
        yield address, database_url
    finally:
        proc.terminate()
        proc.wait(30)


RAW_HASHER = PasswordHasher(
    IdentitySettings.from_env().hash_params,
    executor=ThreadPoolExecutor(max_workers=os.cpu_count() or 2),
)


async def raw_argon2_rate() -> float:
    """Verifications per second with identity's parameters, one thread per core."""
    stored = await RAW_HASHER.hash("Correct-horse-battery-9")
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one() -> None:
        async with semaphore:
            assert await RAW_HASHER.verify(stored, "Correct-horse-battery-9")

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(SIGN_INS)))
    return SIGN_INS / (time.perf_counter() - started)


async def portal_account(
    stub: pb_grpc.IdentityServiceAsyncStub, codec: PrincipalSigner, first_name: str, last_name: str
) -> tuple[str, str]:
    """A new patient with portal access and onsite credentials: (username, temporary password)."""
    staff_md = codec.metadata(STAFF)
    patient = await stub.RegisterPatient(
        pb.RegisterPatientRequest(
            fields=pb.PatientFields(
                first_name=first_name,
                last_name=last_name,
                date_of_birth="1970-01-01",
                sex="unknown",
            ),
            confirm_duplicate=True,
        ),
        metadata=staff_md,
    )
    await stub.UpdatePatient(
        pb.UpdatePatientRequest(
            patient_id=patient.patient.id,
            allow_patient_portal=True,
            update_mask=["allow_patient_portal"],
        ),
        metadata=staff_md,
    )
    issued = await stub.IssueCredentials(
        pb.IssueCredentialsRequest(patient_id=patient.patient.id, realm=pb.REALM_ONSITE),
        metadata=staff_md,
    )
    return issued.username, issued.password


async def create_accounts(
    stub: pb_grpc.IdentityServiceAsyncStub, codec: PrincipalSigner
) -> list[tuple[str, str]]:
    return [await portal_account(stub, codec, f"Bench{i}", "Signin") for i in range(ACCOUNTS)]


async def sign_in_rate(
    stub: pb_grpc.IdentityServiceAsyncStub,
    codec: PrincipalSigner,
    credentials: list[tuple[str, str]],
) -> float:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        username, password = credentials[i % ACCOUNTS]
        async with semaphore:
            await stub.PatientSignIn(
                pb.PatientSignInRequest(
                    realm=pb.REALM_ONSITE, username=username, password=password
                ),
                metadata=codec.metadata(GATEWAY),
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(SIGN_INS)))
    return SIGN_INS / (time.perf_counter() - started)


async def load_patients(database_url: str) -> None:
    """100,000 patients through COPY (the registry's own rules are not what is measured)."""
    rng = random.Random(7)
    start = date(1930, 1, 1)
    rows = [
        (
            uuid.uuid4(),
            rng.choice(FIRST).title(),
            rng.choice(LAST).title(),
            start + timedelta(days=rng.randrange(0, 33000)),
            rng.choice(["female", "male"]),
        )
        for _ in range(PATIENTS)
    ]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.copy_records_to_table(
            "patients",
            records=rows,
            columns=["id", "first_name", "last_name", "date_of_birth", "sex"],
        )
        # What autovacuum does after a bulk load: statistics, and the visibility map that lets
        # the name index answer without visiting the table.
        await conn.execute("VACUUM ANALYZE patients, patient_name_terms, name_terms")
    finally:
        await conn.close()


def typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1 :]  # drop one letter


async def search_latencies(
    stub: pb_grpc.IdentityServiceAsyncStub, codec: PrincipalSigner
) -> list[float]:
    rng = random.Random(11)
    queries = []
    for i in range(SEARCHES):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        match i % 4:
            case 0:
                queries.append(f"{first} {last}")
            case 1:
                queries.append(typo(last, rng))
            case 2:
                queries.append(f"{first} {typo(last, rng)}")
            case _:
                day = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 33000))
                queries.append(day.isoformat())
    md = codec.metadata(STAFF)
    for q in queries[:20]:  # warm caches
        await stub.SearchPatients(pb.SearchPatientsRequest(query=q), metadata=md)
    latencies = []
    for q in queries:
        started = time.perf_counter()
        await stub.SearchPatients(pb.SearchPatientsRequest(query=q, limit=25), metadata=md)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def run(pg_url: str, nats_url: str) -> dict[str, float]:
    codec = principal_signer()
    async with (
        identity_process(pg_url, nats_url) as (address, database_url),
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = pb_grpc.IdentityServiceStub(channel)
        credentials = await create_accounts(stub, codec)
        # Alternate the two measurements and take medians: the machine's noise hits both.
        raws, signins = [], []
        for _ in range(ROUNDS):
            raws.append(await raw_argon2_rate())
            signins.append(await sign_in_rate(stub, codec, credentials))
        raw, signin = median(raws), median(signins)
        await load_patients(database_url)
        latencies = await search_latencies(stub, codec)
    return {
        "raw_argon2_verify_per_s": raw,
        "sign_in_per_s": signin,
        "ratio": signin / raw,
        "search_p50_ms": median(latencies),
        "search_p95_ms": percentile(latencies, 95),
        "search_max_ms": max(latencies),
    }
