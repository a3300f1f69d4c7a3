"""Forms through the real service processes (the stack of portal.running_stack).

* Answer save: p95 of a patient's SaveAnswers ("save and finish later") with CHARTS charts of
  one visit form each, the patient and chart form picked at random per save.
* Visit forms follow bookings: the time from BookAppointment's answer (the booking committed)
  until ListChartForms shows the appointment's visit form. The path: scheduling's outbox row,
  its relay woken by NOTIFY, JetStream, forms' durable pull consumer, the chart insert. Each
  sample polls with a deadline; p99 over SAMPLES sequential bookings.

Calls go to the service processes over gRPC; a through-the-gateway variant is the same two
loops over PUT /api/v1/portal/forms/{id}/answers (a patient session per patient) and
GET /api/v1/patients/{id}/forms.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
from google.protobuf.struct_pb2 import Struct

from portal.forms.v1 import forms_pb2 as fpb
from portal.forms.v1 import forms_pb2_grpc as fpb_grpc
from portal.scheduling.v1 import scheduling_pb2 as spb
from portal.scheduling.v1 import scheduling_pb2_grpc as spb_grpc
from services.runtime import db
from services.runtime.principal import Principal
from tests.bench.common import percentile
from tests.bench.portal import running_stack
from tests.bench.scheduling import DESK, Credentials, make_providers, make_type, stamp, week
from tests.conftest import principal_signer

ADMIN = Principal(kind="staff", subject=str(uuid.uuid4()), role="admin", name="bench admin")
CHARTS = 10_000
SAVES = 300
SAMPLES = 200
POLL_DEADLINE = 5.0  # seconds: a sample slower than this fails the run
POLL_PAUSE = 0.002  # between two reads of one sample's chart

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


def answers(n: int) -> Struct:
    given = Struct()
    given.update(
        {
            "reason": f"Follow-up {n}",
            "history": "Seasonal allergies.\nNo surgery.",
            "smoker": n % 2 == 0,
            "weight": 60 + n % 40,
            "pain": ("none", "mild", "severe")[n % 3],
        }
    )
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
            CHARTS,
            uuid.UUID(form_id),
            timeout=600,
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return [(r["patient_id"], r["id"]) for r in rows]


async def save_latency(
    stub: fpb_grpc.FormsServiceAsyncStub, charts: list[tuple[str, str]]
) -> float:
    signer = principal_signer()
    timings = []
    for n in range(SAVES + 20):
        patient_id, chart_form_id = random.choice(charts)
        patient = Principal(kind="patient", subject=patient_id, realm="onsite")
        metadata = signer.metadata(patient)  # as the gateway signs each call
        began = time.perf_counter()
        await stub.SaveAnswers(
            fpb.SaveAnswersRequest(chart_form_id=chart_form_id, answers=answers(n)),
            metadata=metadata,
        )
        if n >= 20:  # the first ones warm connections and caches
            timings.append((time.perf_counter() - began) * 1000)
    return percentile(timings, 95)


async def visit_form_latency(
    forms: fpb_grpc.FormsServiceAsyncStub,
    scheduling: spb_grpc.SchedulingServiceAsyncStub,
    form_id: str,
) -> tuple[float, float]:
    """(p50, p99) ms from a booking's answer until its visit form is in the chart."""
    desk = Credentials(DESK, principal_signer())
    md = desk.metadata()
    [provider] = await make_providers(scheduling, md, 1, "V", week(("00:00", "24:00")))
    type_id = await make_type(
        scheduling, md, "Bench visit", [provider], duration_minutes=20, horizon_days=365
    )
    await forms.SetVisitForms(
        fpb.SetVisitFormsRequest(appointment_type_id=type_id, form_ids=[form_id]),
        metadata=principal_signer().metadata(ADMIN),
    )
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    loop = asyncio.get_running_loop()
    timings = []
    for n in range(SAMPLES + 5):
        patient_id = str(uuid.uuid4())
        booked = await scheduling.BookAppointment(
            spb.BookAppointmentRequest(
                patient_id=patient_id,
                appointment_type_id=type_id,
                provider_id=provider,
                start=stamp(base + timedelta(minutes=20 * n)),
            ),
            metadata=desk.metadata(),
        )
        began = time.perf_counter()
        deadline = loop.time() + POLL_DEADLINE
        while True:
            listed = await forms.ListChartForms(
                fpb.ListChartFormsRequest(patient_id=patient_id), metadata=desk.metadata()
            )
            if any(item.form_id == form_id for item in listed.items):
                break
            if loop.time() > deadline:
                raise RuntimeError(f"appointment {booked.id}: no visit form in the chart")
            await asyncio.sleep(POLL_PAUSE)
        if n >= 5:  # the first ones bind the consumer and warm the relay
            timings.append((time.perf_counter() - began) * 1000)
    return percentile(timings, 50), percentile(timings, 99)


async def run(pg_url: str, nats_url: str) -> dict[str, float]:
    async with running_stack(pg_url, None) as stack:
        ports = stack.config.service_ports
        database_url = db.with_database(stack.config.database_url or "", stack.database("forms"))
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{ports['forms']}") as forms_channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{ports['scheduling']}") as sched_channel,
        ):
            forms = fpb_grpc.FormsServiceStub(forms_channel)
            scheduling = spb_grpc.SchedulingServiceStub(sched_channel)
            form_id = await visit_form(forms)
            charts = await fill_charts(database_url, form_id)
            save_p95 = await save_latency(forms, charts)
            p50, p99 = await visit_form_latency(forms, scheduling, form_id)
    return {
        "charts": float(CHARTS),
        "answer_save_p95_ms": save_p95,
        "booked_to_chart_p50_ms": p50,
        "booked_to_chart_p99_ms": p99,
    }
