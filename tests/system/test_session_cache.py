"""The gateways' session caches across replicas: two more gateway processes in front of the
stack's identity, each keeping sessions for ten minutes, so only invalidation can explain a
token being refused. A change made through gateway A is refused by A at once (it flushed before
answering) and by gateway B as soon as identity's change stream reaches it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.system.conftest import RunningStack
from tests.system.gateways import gateway_replicas
from tests.system.test_api import NEW_PASSWORD, Api
from tests.system.test_api import http as http
from tests.system.test_staff_lifecycle import new_clinician

pytestmark = pytest.mark.system
CACHE = {"PORTAL_SESSION_CACHE_SECONDS": "600"}
STAFF_READ = "/api/v1/patients?q=x"  # reaches identity alone
PATIENT_READ = "/api/v1/portal/profile-updates"
DEADLINE = 5.0


@pytest.fixture(scope="module")
def replicas(stack: RunningStack) -> Iterator[list[str]]:
    with gateway_replicas(stack.stack, 2, CACHE) as urls:
        for url in urls:
            _wait_for_cache(stack, url)
        yield urls


def _wait_for_cache(stack: RunningStack, url: str) -> None:
    """Until the gateway says it uses its cache (identity's stream is open), from its log."""
    log = stack.stack.log_dir / f"gateway-{urlsplit(url).port}.log"
    deadline = time.monotonic() + 30
    while "session cache in use" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise AssertionError(f"the gateway at {url} never started using its session cache")
        time.sleep(0.1)


@pytest.fixture
def apis(replicas: list[str], http: aiohttp.ClientSession, stack: RunningStack) -> tuple[Api, Api]:
    first, second = (Api(http, dataclasses.replace(stack, url=url)) for url in replicas)
    return first, second


async def refused_soon(api: Api, path: str, token: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while (status := (await api.call("GET", path, token))[0]) != 401:
        assert status == 200
        if time.monotonic() > deadline:
            raise AssertionError(f"{api.stack.url} still accepts the token after {DEADLINE}s")
        await asyncio.sleep(0.05)


async def works_on_both(apis: tuple[Api, Api], path: str, token: str) -> None:
    for api in (*apis, *apis):  # twice each: the second answer comes from the cache
        assert (await api.call("GET", path, token))[0] == 200


async def test_disabling_a_user_on_one_gateway_ends_the_session_on_both(
    apis: tuple[Api, Api],
) -> None:
    a, b = apis
    admin = await a.staff_token()
    user, token = await new_clinician(a, admin, "cache" + str(time.monotonic_ns())[-8:])
    await works_on_both(apis, STAFF_READ, token)
    status, body, _ = await a.call(
        "PATCH", f"/api/v1/staff-users/{user}", admin, json={"disabled": True}
    )
    assert status == 200 and body["disabled"] is True
    assert (await a.call("GET", STAFF_READ, token))[0] == 401  # at once, no waiting
    await refused_soon(b, STAFF_READ, token)


async def test_signing_out_on_one_gateway_ends_the_session_on_both(apis: tuple[Api, Api]) -> None:
    a, b = apis
    token = await a.staff_token()
    await works_on_both(apis, STAFF_READ, token)
    status, _, _ = await a.call("DELETE", "/api/v1/staff/sessions/current", token)
    assert status == 204
    assert (await a.call("GET", STAFF_READ, token))[0] == 401
    await refused_soon(b, STAFF_READ, token)


async def test_withdrawing_portal_access_ends_the_patients_session_on_both(
    apis: tuple[Api, Api],
) -> None:
    a, b = apis
    staff = await a.staff_token()
    patient, issued = await a.portal_patient(staff)
    first = await a.patient_token("onsite", issued["username"], issued["password"])
    status, _, token = await a.change_password(first, issued["password"], NEW_PASSWORD)
    assert status == 204 and token
    await works_on_both(apis, PATIENT_READ, token)
    status, body, _ = await a.call(
        "PATCH", f"/api/v1/patients/{patient['id']}", staff, json={"allow_patient_portal": False}
    )
    assert status == 200 and body["allow_patient_portal"] is False
    assert (await a.call("GET", PATIENT_READ, token))[0] == 401
    await refused_soon(b, PATIENT_READ, token)
