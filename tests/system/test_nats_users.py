"""The stack of `make run` runs with its keys split and its NATS users on, and events still flow."""

from __future__ import annotations

import stat
import uuid

import aiohttp
import asyncpg
import nats
import nats.errors
import pytest

from services.runtime.db import with_database
from tests.integration.events import eventually
from tests.system.conftest import RunningStack, known_to_scheduling


async def test_events_flow_from_identity_to_forms_and_scheduling_each_as_its_own_user(
    stack: RunningStack,
) -> None:
    nats_server = stack.stack.nats
    assert nats_server is not None and nats_server.authorization is not None
    with pytest.raises(nats.errors.Error):
        await nats.connect(nats_server.url, allow_reconnect=False, connect_timeout=2)

    for name in ("identity", "forms", "scheduling"):
        env = stack.stack.child_env(name)
        assert env["PORTAL_NATS_USER"] == name
        assert "PORTAL_PRINCIPAL_PRIVATE_KEY" not in env and "PORTAL_GATEWAY_SECRET" not in env
        assert "BEGIN PUBLIC KEY" in env["PORTAL_PRINCIPAL_PUBLIC_KEYS"]
    gateway = stack.stack.child_env("gateway")
    assert not {"PORTAL_NATS_USER", "PORTAL_NATS_PASSWORD"} & set(gateway)
    for path in stack.stack.secrets.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{stack.url}/api/v1/staff/sessions",
            json={"username": "admin", "password": stack.admin_password},
        ) as reply:
            token = (await reply.json())["token"]
        async with http.post(
            f"{stack.url}/api/v1/patients",
            json={
                "first_name": "Event",
                "last_name": "Flow" + uuid.uuid4().hex[:6],
                "date_of_birth": "1990-01-02",
                "sex": "other",
            },
            headers={"Authorization": f"Bearer {token}"},
        ) as reply:
            assert reply.status == 201
            patient_id = uuid.UUID((await reply.json())["id"])

    # identity published patient.registered as its user; forms consumed it as its own.
    forms_url = with_database(stack.stack.config.database_url or "", stack.stack.database("forms"))

    async def chart() -> object:
        conn = await asyncpg.connect(forms_url)
        try:
            return await conn.fetchval("SELECT 1 FROM charts WHERE patient_id = $1", patient_id)
        finally:
            await conn.close()

    assert await eventually(chart, lambda found: found == 1) == 1
    # scheduling consumed it as its own user too (the patients it lets staff book for).
    await known_to_scheduling(stack, str(patient_id))
