"""The request path: GET /api/v1/portal/me through the real stack vs the raw composite.

Both run as processes (gateway + identity vs raw front + raw backend, see raw_composite.py) on
the same PostgreSQL; 32 clients on keep-alive connections. Rounds alternate between the two
and the medians are compared, so the noise of a shared machine hits both. CPU per request is
each process's user+system time over a round divided by the requests it served; "postgres" is
the server backends connected to the database under test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import grpc
import psutil

from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.devstack.stack import SERVICES, Stack, StackConfig
from services.runtime import db
from services.runtime.settings import DEFAULT_PORTS
from tests.bench import identity, raw_composite
from tests.bench.common import median
from tests.conftest import TEST_GATEWAY_ENV, drop_database, free_port, principal_signer

CLIENTS = 32
ROUND_SECONDS = 3.0
ROUNDS = 5
PASSWORD = "Bench-portal-reads-9!"


@dataclass
class Target:
    """One side of the comparison: a URL, its headers, and the processes serving it."""

    url: str
    headers: dict[str, str]
    processes: dict[str, psutil.Process]
    database_url: str


@dataclass
class Round:
    rate: float
    cpu_ms: dict[str, float]  # per request, by process name


async def postgres_backends(database_url: str) -> list[psutil.Process]:
    """The server processes serving connections to this database (same machine)."""
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(database_url)
    try:
        pids = [
            r["pid"]
            for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        ]
    finally:
        await conn.close()
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            continue  # another machine, or already gone
    return found


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def load_round(http: aiohttp.ClientSession, target: Target) -> Round:
    """CLIENTS loops hitting the URL for ROUND_SECONDS; rate and CPU per request."""
    groups = {name: [p] for name, p in target.processes.items()}
    groups["postgres"] = await postgres_backends(target.database_url)
    before = {name: cpu_seconds(ps) for name, ps in groups.items()}
    done = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ROUND_SECONDS

    async def client() -> None:
        nonlocal done
        while loop.time() < deadline:
            async with http.get(target.url, headers=target.headers) as reply:
                await reply.read()
                if reply.status != 200:
                    raise RuntimeError(f"{target.url} answered {reply.status}")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    cpu = {name: (cpu_seconds(ps) - before[name]) * 1000 / done for name, ps in groups.items()}
    return Round(done / elapsed, cpu)


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.bench.raw_composite", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )


@dataclass
class Composite:
    """The raw composite's two processes (raw_composite.py) and where they listen."""

    base: str  # the front's http://host:port
    backend_address: str
    front: psutil.Process
    backend: psutil.Process


@asynccontextmanager
async def raw_composite_on(database_url: str) -> AsyncIterator[Composite]:
    """The raw composite's processes on `database_url`, stopped on the way out."""
    backend_address = f"127.0.0.1:{free_port()}"
    port = free_port()
    procs = [
        spawn(["backend", backend_address, database_url]),
        spawn(["front", str(port), backend_address]),
    ]
    try:
        yield Composite(
            f"http://127.0.0.1:{port}",
            backend_address,
            front=psutil.Process(procs[1].pid),
            backend=psutil.Process(procs[0].pid),
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


@asynccontextmanager
async def raw_target(pg_url: str) -> AsyncIterator[Target]:
    name = f"bench_raw_{uuid.uuid4().hex[:8]}"
    await db.ensure_database(pg_url, name)
    database_url = db.with_database(pg_url, name)
    person = await raw_composite.prepare(database_url)
    try:
        async with raw_composite_on(database_url) as composite:
            target = Target(
                url=f"{composite.base}{raw_composite.PATH}",
                headers={"X-Person": person},
                processes={"front": composite.front, "backend": composite.backend},
                database_url=database_url,
            )
            await wait_for(target)
            yield target
    finally:
        await drop_database(pg_url, name)


async def wait_for(target: Target) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(target.url, headers=target.headers) as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{target.url} did not answer")


@asynccontextmanager
async def running_stack(
    pg_url: str, nats_url: str | None, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Stack]:
    """The four processes on their own databases; nats_url=None: a NATS server of the stack's
    own, so the fixed stream and consumer names meet no other run's events. extra_env: more
    settings for every process."""
    folder = Path(tempfile.mkdtemp(prefix="portal-bench-stack-"))
    config = StackConfig(
        data_dir=folder,
        database_url=pg_url,
        nats_url=nats_url,
        gateway_host="127.0.0.1",
        gateway_port=free_port(),
        service_ports={name: free_port() for name in DEFAULT_PORTS},
        pg_port=0,
        nats_port=free_port(),
        database_prefix=f"bench{uuid.uuid4().hex[:8]}_",
        extra_env={
            "PORTAL_SHUTDOWN_DRAIN": "0.1",
            "PORTAL_ADMIN_PASSWORD": PASSWORD,
            **(extra_env or {}),
        },
    )
    stack = Stack(config, {**os.environ, **TEST_GATEWAY_ENV})
    try:
        # Start-up and shutdown block (and run event loops of their own): not on this loop.
        await asyncio.to_thread(stack.start)
        await asyncio.to_thread(stack.wait_ready, 120)
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)
        for name in SERVICES:
            await drop_database(pg_url, stack.database(name))
        shutil.rmtree(folder, ignore_errors=True)


async def patient_token(stack: Stack) -> str:
    """A patient with portal access, signed in and past the first password change."""
    address = f"127.0.0.1:{stack.config.service_ports['identity']}"
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.IdentityServiceStub(channel)
        username, password = await identity.portal_account(
            stub, principal_signer(), "Bench", "Reader"
        )
    base = stack.gateway_url
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/v1/portal/onsite/sessions",
            json={"username": username, "password": password},
        ) as reply:
            first = (await reply.json())["token"]
        async with http.post(
            f"{base}/api/v1/portal/password",
            json={"current_password": password, "new_password": PASSWORD},
            headers={"Authorization": f"Bearer {first}"},
        ) as reply:
            if reply.status != 204:
                raise RuntimeError(f"password change answered {reply.status}")
            return reply.headers["X-Session-Token"]


def portal_target(stack: Stack, token: str) -> Target:
    return Target(
        url=f"{stack.gateway_url}/api/v1/portal/me",
        headers={"Authorization": f"Bearer {token}"},
        processes={
            "gateway": psutil.Process(stack.children["gateway"].pid),
            "identity": psutil.Process(stack.children["identity"].pid),
        },
        database_url=db.with_database(stack.config.database_url or "", stack.database("identity")),
    )


def medians(rounds: list[Round]) -> dict[str, float]:
    return {name: median([r.cpu_ms[name] for r in rounds]) for name in rounds[0].cpu_ms}


async def measure(pg_url: str, stack: Stack) -> dict[str, float]:
    token = await patient_token(stack)
    portal = portal_target(stack, token)
    async with raw_target(pg_url) as raw:
        connector = aiohttp.TCPConnector(limit=CLIENTS)
        async with aiohttp.ClientSession(connector=connector) as http:
            await load_round(http, raw)  # warm-up: connections, pools, caches
            await load_round(http, portal)
            raws, portals = [], []
            for _ in range(ROUNDS):
                raws.append(await load_round(http, raw))
                portals.append(await load_round(http, portal))
    raw_rate = median([r.rate for r in raws])
    portal_rate = median([r.rate for r in portals])
    results = {"raw_composite_per_s": raw_rate, "portal_me_per_s": portal_rate}
    results["ratio"] = portal_rate / raw_rate
    for side, rounds in (("raw", raws), ("me", portals)):
        for name, ms in medians(rounds).items():
            results[f"{side}_cpu_ms_{name}"] = ms
    return results


async def run(pg_url: str, nats_url: str) -> dict[str, float]:
    async with running_stack(pg_url, nats_url) as stack:
        return await measure(pg_url, stack)
