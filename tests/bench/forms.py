"""Forms through the real stack (portal.running_stack): gateway, identity, forms, scheduling.

* Answer save: p95 of PUT /api/v1/portal/forms/{id}/answers ("save and finish later") through
  the gateway, as a patient's browser sends it: the gateway resolves the Bearer session with
  identity, then calls forms' SaveAnswers with the signed principal. The forms database holds
  CHARTS charts of one visit form each (made by SQL); PATIENTS of them are real patients
  registered, given portal access and credentials, signed in and past the first password change
  through the API, and each save picks one of them at random. The same saves over gRPC straight
  to forms are reported beside it, so the gateway's share is visible.
* Visit forms follow bookings: the time from BookAppointment's answer (the booking committed)
  until the patient's GET /api/v1/portal/forms through the gateway lists the appointment's visit
  form. The path: scheduling's outbox row, its relay (woken in process when the booking's
  connection returns to the pool), JetStream, forms' durable pull consumer, the chart insert,
  then a list through the gateway. The bench lists again each time a chart form is committed
  (a NOTIFY from a trigger the bench adds to its own forms database for the measurement) and
  every FALLBACK_POLL: a tight loop of lists would take the CPU the event path needs on a small
  machine. Each sample has a deadline; p99 over SAMPLES sequential bookings, spread over
  the PATIENTS. `load_1min` is the machine's load average right after the saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import grpc
from google.protobuf.struct_pb2 import Struct

from portal.forms.v1 import forms_pb2 as fpb
from portal.forms.v1 import forms_pb2_grpc as fpb_grpc
from portal.scheduling.v1 import scheduling_pb2 as spb
from portal.scheduling.v1 import scheduling_pb2_grpc as spb_grpc
from services.devstack.stack import Stack
from services.runtime import db
from services.runtime.principal import Principal
from tests.bench.common import percentile
from tests.bench.portal import PASSWORD, running_stack
from tests.bench.scheduling import (
    DESK,
    Credentials,
    make_providers,
    make_type,
    put_known,
    stamp,
    week,
)
from tests.conftest import principal_signer

ADMIN = Principal(kind="staff", subject=str(uuid.uuid4()), role="admin", name="bench admin")
CHARTS = 10_000
PATIENTS = 40  # real patients with a portal session, among the CHARTS
SAVES = 300
WARM_UP = 20  # saves or samples not counted: they warm connections, pools and caches
SAMPLES = 200
POLL_DEADLINE = 5.0  # seconds: a sample slower than this fails the run
FALLBACK_POLL = 0.05  # seconds: list again even without a NOTIFY from forms
PLACED_CHANNEL = "bench_chart_form_placed"
NEW_PASSWORD = "Bench-forms-saves-7!"
# Each sample patient signs in once; the stack's per-address sign-in limit would refuse the
# bench's own sign-ins (all from 127.0.0.1) after 20 a minute.
STACK_ENV = {"PORTAL_LOGIN_RATE_PER_MINUTE": "1000"}

ITEMS = [
    fpb.Item(link_id="reason", text="Reason for the visit", type=fpb.ITEM_TYPE_STRING),
    fpb.Item(link_id="history", text="History", type=fpb.ITEM_TYPE_TEXT),
    fpb.Item(link_id="smoker", text="Do you smoke?", type=fpb.ITEM_TYPE_BOOLEAN),
    fpb.Item(link_id="weight", text="Weight (kg)", type=fpb.ITEM_TYPE_INTEGER),
    fpb.Item(
        link_id="pain",
        text="Pain today",
        type=fpb.ITEM_TYPE_CHOICE,
        options=[fpb.Option(value=v) for v in ("none", "mild", "severe")],
    ),
]


@dataclass(frozen=True)
class Patient:
    id: str
    token: str  # a portal session, Bearer
    chart_form_id: str  # their copy of the visit form


def answers(n: int) -> dict[str, Any]:
    return {
        "reason": f"Follow-up {n}",
        "history": "Seasonal allergies.\nNo surgery.",
        "smoker": n % 2 == 0,
        "weight": 60 + n % 40,
        "pain": ("none", "mild", "severe")[n % 3],
    }


def struct(values: dict[str, Any]) -> Struct:
    given = Struct()
    given.update(values)
    return given


async def visit_form(stub: fpb_grpc.FormsServiceAsyncStub) -> str:
    md = principal_signer().metadata(ADMIN)
    made = await stub.CreateForm(
        fpb.CreateFormRequest(
            definition=fpb.FormDefinition(
                title="Bench visit form", kind=fpb.FORM_KIND_VISIT, items=ITEMS
            )
        ),
        metadata=md,
    )
    return str(made.id)


async def fill_charts(database_url: str, form_id: str) -> list[tuple[str, str]]:
    """CHARTS charts with the visit form each, by SQL; (patient id, chart form id) pairs."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """WITH made AS (
                   INSERT INTO charts (patient_id, portal_access)
                   SELECT gen_random_uuid(), true FROM generate_series(1, $1)
                   RETURNING patient_id)
               INSERT INTO chart_forms (patient_id, form_id, form_version, origin, assigned_by)
               SELECT patient_id, $2, 1, 'staff', 'bench' FROM made
               RETURNING patient_id::text, id::text""",
            CHARTS - PATIENTS,
            uuid.UUID(form_id),
            timeout=600,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return [(r["patient_id"], r["id"]) for r in rows]


class Api:
    """The gateway's JSON API on one keep-alive session."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def call(
        self, method: str, path: str, token: str, body: Any = None, expect: int = 200
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.http.request(method, self.base + path, json=body, headers=headers) as reply:
            found = await reply.json(content_type=None) if reply.status != 204 else None
            if reply.status != expect:
                raise RuntimeError(f"{method} {path} answered {reply.status}: {found}")
            return found if reply.status != 204 else dict(reply.headers)


async def sample_patient(api: Api, staff: str, n: int, form_id: str) -> Patient:
    """A patient as the clinic makes one: registered, portal access, credentials, signed in,
    password changed; then the visit form added to the chart (as staff do)."""
    patient = await api.call(
        "POST",
        "/api/v1/patients",
        staff,
        {
            "first_name": f"Bench{n}",
            "last_name": "Forms",
            "date_of_birth": "1970-01-01",
            "sex": "unknown",
        },
        expect=201,
    )
    path = f"/api/v1/patients/{patient['id']}"
    await api.call("PATCH", path, staff, {"allow_patient_portal": True})
    issued = await api.call("POST", f"{path}/portal-credentials/onsite", staff, expect=201)
    first = await api.call(
        "POST",
        "/api/v1/portal/onsite/sessions",
        "",
        {"username": issued["username"], "password": issued["password"]},
        expect=201,
    )
    changed = await api.call(
        "POST",
        "/api/v1/portal/password",
        first["token"],
        {"current_password": issued["password"], "new_password": NEW_PASSWORD},
        expect=204,
    )
    # forms opens the chart when it hears of the registration (an event): until then 404.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + POLL_DEADLINE
    while True:
        try:
            added = await api.call("POST", f"{path}/forms", staff, {"form_id": form_id}, expect=201)
            break
        except RuntimeError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)
    return Patient(patient["id"], changed["X-Session-Token"], added["id"])


async def save_latency_http(api: Api, patients: list[Patient]) -> tuple[float, float]:
    """(p50, p95) ms of PUT .../answers through the gateway."""
    timings = []
    for n in range(SAVES + WARM_UP):
        patient = random.choice(patients)
        path = f"/api/v1/portal/forms/{patient.chart_form_id}/answers"
        began = time.perf_counter()
        saved = await api.call("PUT", path, patient.token, {"answers": answers(n)})
        elapsed = (time.perf_counter() - began) * 1000
        if saved["status"] != "in-progress" or saved["answers"]["reason"] != f"Follow-up {n}":
            raise RuntimeError(f"the save was not stored: {saved}")
        if n >= WARM_UP:
            timings.append(elapsed)
    return percentile(timings, 50), percentile(timings, 95)


async def save_latency_grpc(
    stub: fpb_grpc.FormsServiceAsyncStub, charts: list[tuple[str, str]]
) -> float:
    """p95 ms of SaveAnswers straight to forms (the principal signed as the gateway does)."""
    signer = principal_signer()
    timings = []
    for n in range(SAVES + WARM_UP):
        patient_id, chart_form_id = random.choice(charts)
        patient = Principal(kind="patient", subject=patient_id, realm="onsite")
        metadata = signer.metadata(patient)  # as the gateway signs each call
        began = time.perf_counter()
        await stub.SaveAnswers(
            fpb.SaveAnswersRequest(chart_form_id=chart_form_id, answers=struct(answers(n))),
            metadata=metadata,
        )
        if n >= WARM_UP:
            timings.append((time.perf_counter() - began) * 1000)
    return percentile(timings, 95)


async def put_known_patients(stack: Stack, patient_ids: list[str]) -> None:
    """Staff book only for patients scheduling knows: put these in its projection now (one
    statement), as their registrations' events do in their own time."""
    url = db.with_database(stack.config.database_url or "", stack.database("scheduling"))
    conn = await asyncpg.connect(url)
    try:
        await put_known(conn, [uuid.UUID(p) for p in patient_ids])
    finally:
        await conn.close()


async def visit_form_latency(
    api: Api,
    forms: fpb_grpc.FormsServiceAsyncStub,
    scheduling: spb_grpc.SchedulingServiceAsyncStub,
    form_id: str,
    patients: list[Patient],
    forms_database_url: str,
) -> tuple[float, float]:
    """(p50, p99) ms from a booking's answer until the patient's forms list shows its form."""
    committed = asyncio.Event()
    listener = await asyncpg.connect(forms_database_url)
    # The observer's signal only (the services' own commits send no NOTIFY): removed after.
    await listener.execute(
        f"""CREATE FUNCTION bench_placed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_notify('{PLACED_CHANNEL}', ''); RETURN NULL; END $$;
            CREATE TRIGGER bench_placed AFTER INSERT ON chart_forms
                FOR EACH STATEMENT EXECUTE FUNCTION bench_placed()"""
    )
    await listener.add_listener(PLACED_CHANNEL, lambda *_: committed.set())
    try:
        return await _visit_form_latency(api, forms, scheduling, form_id, patients, committed)
    finally:
        await listener.execute(
            "DROP TRIGGER bench_placed ON chart_forms; DROP FUNCTION bench_placed()"
        )
        await listener.close()


async def _visit_form_latency(
    api: Api,
    forms: fpb_grpc.FormsServiceAsyncStub,
    scheduling: spb_grpc.SchedulingServiceAsyncStub,
    form_id: str,
    patients: list[Patient],
    committed: asyncio.Event,
) -> tuple[float, float]:
    desk = Credentials(DESK, principal_signer())
    admin = principal_signer().metadata(ADMIN)  # practice set-up is the admin's
    [provider] = await make_providers(scheduling, admin, 1, "V", week(("00:00", "24:00")))
    type_id = await make_type(
        scheduling, admin, "Bench visit", [provider], duration_minutes=20, horizon_days=365
    )
    await forms.SetVisitForms(
        fpb.SetVisitFormsRequest(appointment_type_id=type_id, form_ids=[form_id]),
        metadata=admin,
    )
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    loop = asyncio.get_running_loop()
    timings = []
    for n in range(SAMPLES + 5):
        patient = patients[n % len(patients)]
        start = base + timedelta(minutes=20 * n)
        committed.clear()
        booked = await scheduling.BookAppointment(
            spb.BookAppointmentRequest(
                patient_id=patient.id,
                appointment_type_id=type_id,
                provider_id=provider,
                start=stamp(start),
            ),
            metadata=desk.metadata(),
        )
        began = time.perf_counter()
        deadline = loop.time() + POLL_DEADLINE
        while True:
            listed = await api.call("GET", "/api/v1/portal/forms", patient.token)
            if any(
                item["form_id"] == form_id
                and item["due"] is not None
                and datetime.fromisoformat(item["due"]) == start
                for item in listed["items"]
            ):
                break
            if loop.time() > deadline:
                raise RuntimeError(f"appointment {booked.id}: no visit form in the chart")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(committed.wait(), FALLBACK_POLL)
            committed.clear()
        if n >= 5:  # the first ones bind the consumer and warm the relay
            timings.append((time.perf_counter() - began) * 1000)
    return percentile(timings, 50), percentile(timings, 99)


async def measure(stack: Stack) -> dict[str, float]:
    ports = stack.config.service_ports
    database_url = db.with_database(stack.config.database_url or "", stack.database("forms"))
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{ports['forms']}") as forms_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{ports['scheduling']}") as sched_channel,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as http,
    ):
        forms = fpb_grpc.FormsServiceStub(forms_channel)
        scheduling = spb_grpc.SchedulingServiceStub(sched_channel)
        api = Api(http, stack.gateway_url)
        form_id = await visit_form(forms)
        charts = await fill_charts(database_url, form_id)
        staff = (
            await api.call(
                "POST",
                "/api/v1/staff/sessions",
                "",
                {"username": "admin", "password": PASSWORD},
                expect=201,
            )
        )["token"]
        patients = [await sample_patient(api, staff, n, form_id) for n in range(PATIENTS)]
        await put_known_patients(stack, [p.id for p in patients])
        http_p50, http_p95 = await save_latency_http(api, patients)
        load = os.getloadavg()[0]  # a shared machine: the saves' tail depends on it
        grpc_p95 = await save_latency_grpc(forms, charts)
        p50, p99 = await visit_form_latency(api, forms, scheduling, form_id, patients, database_url)
    return {
        "charts": float(CHARTS),
        "answer_save_p50_ms": http_p50,
        "answer_save_p95_ms": http_p95,
        "answer_save_grpc_p95_ms": grpc_p95,
        "booked_to_visible_p50_ms": p50,
        "booked_to_visible_p99_ms": p99,
        "load_1min": load,
    }


async def run(pg_url: str, nats_url: str) -> dict[str, float]:
    async with running_stack(pg_url, None, STACK_ENV) as stack:
        return await measure(stack)
