"""SIGTERM during a call: health turns NOT_SERVING, the call completes, the process exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from portal.identity.v1 import identity_pb2 as pb
from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.runtime.principal import Principal
from tests.conftest import TEST_SERVICE_ENV, free_port, principal_signer
from tests.integration.events import eventually

SERVICE = "portal.identity.v1.IdentityService"


async def health(stub: health_pb2_grpc.HealthStub, service: str) -> str:
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def test_sigterm_mid_call_finishes_the_call_and_exits_zero(
    database_url: str, nats_url: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PORTAL_DATABASE_URL": database_url,
        "PORTAL_NATS_URL": nats_url,
        "PORTAL_GRPC_LISTEN": f"127.0.0.1:{port}",
        **TEST_SERVICE_ENV,
        "PORTAL_SHUTDOWN_DRAIN": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.identity"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    blocker = None
    try:
        health_stub = health_pb2_grpc.HealthStub(channel)
        await eventually(lambda: health(health_stub, SERVICE), lambda s: s == "SERVING", 60)

        # Hold a lock the next call needs, so that it is certainly in flight at SIGTERM.
        blocker = await asyncpg.connect(database_url)
        await blocker.execute("BEGIN; LOCK TABLE patients IN ACCESS EXCLUSIVE MODE")
        staff = Principal(
            kind="staff",
            subject="00000000-0000-0000-0000-000000000001",
            role="front_desk",
            name="tester",
        )
        call = asyncio.ensure_future(
            pb_grpc.IdentityServiceStub(channel).RegisterPatient(
                pb.RegisterPatientRequest(
                    fields=pb.PatientFields(
                        first_name="Ada",
                        last_name="Lovelace",
                        date_of_birth="1985-12-10",
                        sex="female",
                    )
                ),
                metadata=principal_signer().metadata(staff),
                timeout=30,
            )
        )
        await eventually(
            lambda: blocker.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ),
            lambda n: n >= 1,
        )

        proc.send_signal(signal.SIGTERM)
        assert (
            await eventually(lambda: health(health_stub, SERVICE), lambda s: s != "SERVING")
            == "NOT_SERVING"
        )
        assert await health(health_stub, "") == "NOT_SERVING"
        assert not call.done()

        await blocker.execute("ROLLBACK")  # let the in-flight call finish
        reply = await call
        assert reply.patient.last_name == "Lovelace"
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if blocker is not None:
            await blocker.close()
        await channel.close(grace=None)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
