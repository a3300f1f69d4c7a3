"""The forms service over real gRPC against real PostgreSQL (and NATS for events)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf import struct_pb2

from portal.events.v1 import identity_pb2
from portal.events.v1.scheduling_pb2 import AppointmentChanged
from portal.forms.v1 import forms_pb2 as pb
from portal.forms.v1 import forms_pb2_grpc as pb_grpc
from services.forms import appointments, charts, library
from services.forms.canonical import document_sha256
from services.forms.servicer import FormsServicer
from services.runtime import db
from services.runtime.broker import Broker
from services.runtime.consumer import EventConsumer, Subscription
from services.runtime.errors import field_errors, precondition_kind
from services.runtime.principal import Principal, PrincipalSigner
from tests.conftest import principal_signer, principal_verifier
from tests.integration.events import eventually

ADMIN = Principal(kind="staff", subject=str(uuid.uuid4()), role="admin", name="admin")
PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class Forms:
    stub: pb_grpc.FormsServiceAsyncStub
    codec: PrincipalSigner
    pool: asyncpg.Pool

    def md(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        return self.codec.metadata(principal)

    async def chart(self, portal_access: bool = True) -> tuple[str, Principal]:
        patient_id = str(uuid.uuid4())
        await self.pool.execute(
            "INSERT INTO charts (patient_id, portal_access) VALUES ($1, $2)",
            uuid.UUID(patient_id),
            portal_access,
        )
        who = Principal(kind="patient", subject=patient_id, realm="onsite", source="198.51.100.7")
        return patient_id, who

    async def form_id(self, key: str) -> str:
        return str(await self.pool.fetchval("SELECT id FROM forms WHERE library_key = $1", key))

    async def assign(self, patient_id: str, key: str) -> pb.ChartForm:
        return await self.stub.AssignChartForm(
            pb.AssignChartFormRequest(patient_id=patient_id, form_id=await self.form_id(key)),
            metadata=self.md(ADMIN),
        )


async def start_forms(database_url: str) -> tuple[grpc.aio.Server, asyncpg.Pool, int]:
    pool = await db.create_pool(database_url, max_size=8)
    async with pool.acquire() as conn:
        await db.migrate(
            conn,
            db.runtime_migrations()
            + db.load_migrations("forms", resources.files("services.forms") / "migrations"),
        )
        await library.seed(conn)
    server = grpc.aio.server()
    pb_grpc.add_FormsServiceServicer_to_server(FormsServicer(pool, principal_verifier()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, pool, port


@pytest.fixture
async def forms(database_url: str) -> AsyncIterator[Forms]:
    server, pool, port = await start_forms(database_url)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Forms(pb_grpc.FormsServiceStub(channel), principal_signer(), pool)
    await channel.close(grace=None)
    await server.stop(None)
    await pool.close()


def answers(**values: Any) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


async def test_the_library_is_seeded_once_with_the_real_phq9(forms: Forms) -> None:
    async with forms.pool.acquire() as conn:
        assert await library.seed(conn) == 0  # a second start adds nothing
    listed = await forms.stub.ListForms(pb.ListFormsRequest(), metadata=forms.md(ADMIN))
    kinds = {f.title: f.kind for f in listed.items}
    assert len(listed.items) == len(library.LIBRARY)
    assert kinds["Telehealth consent"] == pb.FORM_KIND_CONSENT
    assert kinds["Prescription refill request"] == pb.FORM_KIND_REFILL
    phq9 = await forms.stub.GetForm(
        pb.GetFormRequest(form_id=await forms.form_id("phq-9")), metadata=forms.md(ADMIN)
    )
    questions = [i for i in phq9.definition.items if i.type == pb.ITEM_TYPE_CHOICE and i.required]
    assert len(questions) == 9
    assert [o.value for o in questions[0].options] == ["0", "1", "2", "3"]


async def test_submit_names_the_missing_required_items_then_completes(forms: Forms) -> None:
    patient_id, patient = await forms.chart()
    chart_form = await forms.assign(patient_id, "phq-9")
    cf_id = chart_form.summary.id

    saved = await forms.stub.SaveAnswers(
        pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(phq9_1="2", phq9_2="1")),
        metadata=forms.md(patient),
    )
    assert saved.summary.status == pb.CHART_FORM_STATUS_IN_PROGRESS

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await forms.stub.SubmitChartForm(
            pb.SubmitChartFormRequest(chart_form_id=cf_id), metadata=forms.md(patient)
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(field_errors(refused.value)) == [f"phq9_{n}" for n in range(3, 10)]

    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        await forms.stub.SaveAnswers(
            pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(phq9_1="7")),
            metadata=forms.md(patient),
        )
    assert list(field_errors(invalid.value)) == ["phq9_1"]

    full = {f"phq9_{n}": str(n % 4) for n in range(1, 10)}
    await forms.stub.SaveAnswers(
        pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(**full)),
        metadata=forms.md(patient),
    )
    done = await forms.stub.SubmitChartForm(
        pb.SubmitChartFormRequest(chart_form_id=cf_id), metadata=forms.md(patient)
    )
    assert done.summary.status == pb.CHART_FORM_STATUS_COMPLETED and done.summary.done

    queue = await forms.stub.ListReviewQueue(pb.ListReviewQueueRequest(), metadata=forms.md(ADMIN))
    assert [i.id for i in queue.items] == [cf_id]
    returned = await forms.stub.ReviewChartForm(
        pb.ReviewChartFormRequest(
            chart_form_id=cf_id, decision=pb.REVIEW_DECISION_RETURN, note="Please answer 9 again."
        ),
        metadata=forms.md(ADMIN),
    )
    assert returned.summary.status == pb.CHART_FORM_STATUS_RETURNED
    mine = await forms.stub.ListChartForms(pb.ListChartFormsRequest(), metadata=forms.md(patient))
    assert mine.items[0].return_reason == "Please answer 9 again." and not mine.items[0].done
    # A returned form can be edited again.
    again = await forms.stub.SaveAnswers(
        pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(**full)),
        metadata=forms.md(patient),
    )
    assert again.summary.status == pb.CHART_FORM_STATUS_IN_PROGRESS
    events = await forms.pool.fetch("SELECT subject FROM outbox ORDER BY seq")
    assert [e["subject"].rsplit(".", 1)[-1] for e in events] == [
        "assigned",
        "submitted",
        "returned",
    ]


async def saves_logged(forms: Forms, chart_form_id: str) -> list[str]:
    rows = await forms.pool.fetch(
        """SELECT source_address FROM access_log
           WHERE chart_form_id = $1 AND action = 'chart_form.answers_saved' ORDER BY id""",
        uuid.UUID(chart_form_id),
    )
    return [r["source_address"] for r in rows]


async def test_a_save_without_a_lock_never_overwrites_a_form_that_changed(forms: Forms) -> None:
    """Saves to a published version are one read and one conditional write (with its audit
    row); a submission that commits in between wins, and the save then says why it failed."""
    patient_id, patient = await forms.chart()
    cf_id = (await forms.assign(patient_id, "phq-9")).summary.id
    full = {f"phq9_{n}": str(n % 4) for n in range(1, 10)}
    for given in ({"phq9_1": "1"}, full):  # the first publishes the version, the second not
        saved = await forms.stub.SaveAnswers(
            pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(**given)),
            metadata=forms.md(patient),
        )
        assert dict(saved.answers) == given
        assert saved.summary.status == pb.CHART_FORM_STATUS_IN_PROGRESS
        assert saved.form.published and len(saved.form.definition.items) > 9
    assert await saves_logged(forms, cf_id) == ["198.51.100.7", "198.51.100.7"]

    # The submission holds the row while the save's write waits for it, then commits.
    async with forms.pool.acquire() as conn:
        submitting = conn.transaction()
        await submitting.start()
        await conn.execute(
            "UPDATE chart_forms SET status = 'completed' WHERE id = $1", uuid.UUID(cf_id)
        )
        save = asyncio.ensure_future(
            forms.stub.SaveAnswers(
                pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(phq9_1="3")),
                metadata=forms.md(patient),
            )
        )
        await eventually(
            lambda: forms.pool.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND wait_event_type = 'Lock'
                     AND query LIKE '%UPDATE chart_forms%'"""
            ),
            lambda waiting: waiting == 1,
        )
        await submitting.commit()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await save
    assert precondition_kind(refused.value) == "NOT_EDITABLE"
    stored = await forms.pool.fetchval(
        "SELECT answers->>'phq9_1' FROM chart_forms WHERE id = $1", uuid.UUID(cf_id)
    )
    assert stored == full["phq9_1"]
    assert len(await saves_logged(forms, cf_id)) == 2  # no audit row for a save not made


async def test_every_list_of_a_chart_is_in_the_access_log(forms: Forms) -> None:
    patient_id, patient = await forms.chart()
    await forms.assign(patient_id, "phq-9")
    for who in (patient, ADMIN):
        listed = await forms.stub.ListChartForms(
            pb.ListChartFormsRequest(patient_id=patient_id), metadata=forms.md(who)
        )
        assert len(listed.items) == 1
    logged = await forms.pool.fetch(
        """SELECT actor_kind, actor_id, source_address FROM access_log
           WHERE patient_id = $1 AND action = 'chart_forms.list' ORDER BY id""",
        uuid.UUID(patient_id),
    )
    assert [tuple(r) for r in logged] == [
        ("patient", patient_id, "198.51.100.7"),
        ("staff", f"admin ({ADMIN.subject})", ""),
    ]


async def test_a_patient_cannot_touch_another_patients_form(forms: Forms) -> None:
    owner_id, owner = await forms.chart()
    _, other = await forms.chart()
    cf_id = (await forms.assign(owner_id, "consent-to-treatment")).summary.id
    await forms.stub.SaveAnswers(
        pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(consent=True)),
        metadata=forms.md(owner),
    )
    await forms.stub.SignChartForm(
        pb.SignChartFormRequest(
            chart_form_id=cf_id, typed_name="Ada Lovelace", agree_to_electronic_signature=True
        ),
        metadata=forms.md(owner),
    )
    calls: list[Awaitable[object]] = [
        forms.stub.GetChartForm(
            pb.GetChartFormRequest(chart_form_id=cf_id), metadata=forms.md(other)
        ),
        forms.stub.SaveAnswers(
            pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(consent=True)),
            metadata=forms.md(other),
        ),
        forms.stub.SubmitChartForm(
            pb.SubmitChartFormRequest(chart_form_id=cf_id), metadata=forms.md(other)
        ),
        forms.stub.SignChartForm(
            pb.SignChartFormRequest(
                chart_form_id=cf_id, typed_name="Mallory", agree_to_electronic_signature=True
            ),
            metadata=forms.md(other),
        ),
        forms.stub.VerifySignature(
            pb.VerifySignatureRequest(chart_form_id=cf_id), metadata=forms.md(other)
        ),
        forms.stub.GetSignatureCertificate(
            pb.GetSignatureCertificateRequest(chart_form_id=cf_id), metadata=forms.md(other)
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    # The other patient's list never shows it, whatever patient id the request names.
    listed = await forms.stub.ListChartForms(
        pb.ListChartFormsRequest(patient_id=owner_id), metadata=forms.md(other)
    )
    assert list(listed.items) == []
    # Patients may not review or assign.
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await forms.stub.ReviewChartForm(
            pb.ReviewChartFormRequest(chart_form_id=cf_id, decision=pb.REVIEW_DECISION_ACCEPT),
            metadata=forms.md(owner),
        )
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_signature_is_recorded_immutable_and_verifiable(forms: Forms) -> None:
    patient_id, patient = await forms.chart()
    cf = await forms.assign(patient_id, "telehealth-consent")
    cf_id = cf.summary.id
    given = {"consent": True, "location_state": "Oregon", "callback_phone": "555 0100"}
    await forms.stub.SaveAnswers(
        pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(**given)),
        metadata=forms.md(patient),
    )
    # A consent form is completed by signing, never by a bare submit.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await forms.stub.SubmitChartForm(
            pb.SubmitChartFormRequest(chart_form_id=cf_id), metadata=forms.md(patient)
        )
    assert precondition_kind(refused.value) == "SIGNATURE_REQUIRED"
    for bad in (
        pb.SignChartFormRequest(
            chart_form_id=cf_id, typed_name="  ", agree_to_electronic_signature=True
        ),
        pb.SignChartFormRequest(chart_form_id=cf_id, typed_name="Ada Lovelace"),
        pb.SignChartFormRequest(
            chart_form_id=cf_id,
            typed_name="Ada Lovelace",
            agree_to_electronic_signature=True,
            drawn_signature_png=b"GIF89a not a png",
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await forms.stub.SignChartForm(bad, metadata=forms.md(patient))
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    signature = await forms.stub.SignChartForm(
        pb.SignChartFormRequest(
            chart_form_id=cf_id,
            typed_name="Ada  Lovelace",
            agree_to_electronic_signature=True,
            drawn_signature_png=PNG_1x1,
            user_agent="Mozilla/5.0 (test)",
        ),
        metadata=forms.md(patient),
    )
    assert (signature.signer_kind, signature.signer_id) == ("patient", patient_id)
    assert signature.source_address == "198.51.100.7"
    assert signature.user_agent == "Mozilla/5.0 (test)" and signature.has_drawn_signature
    form_id = await forms.form_id("telehealth-consent")
    assert signature.document_sha256 == document_sha256(form_id, 1, given, "Ada Lovelace")

    with pytest.raises(grpc.aio.AioRpcError) as again:
        await forms.stub.SignChartForm(
            pb.SignChartFormRequest(
                chart_form_id=cf_id, typed_name="Ada Lovelace", agree_to_electronic_signature=True
            ),
            metadata=forms.md(patient),
        )
    assert precondition_kind(again.value) == "ALREADY_SIGNED"
    with pytest.raises(grpc.aio.AioRpcError) as change:
        await forms.stub.SaveAnswers(
            pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(consent=False)),
            metadata=forms.md(patient),
        )
    assert precondition_kind(change.value) == "ALREADY_SIGNED"

    # No UPDATE or DELETE path exists for signature rows, not even in SQL.
    for statement in (
        "UPDATE signatures SET typed_name = 'Mallory'",
        "DELETE FROM signatures",
        "TRUNCATE signatures CASCADE",
        f"UPDATE chart_forms SET answers = '{{}}' WHERE id = '{cf_id}'",
    ):
        with pytest.raises(asyncpg.IntegrityConstraintViolationError):
            await forms.pool.execute(statement)

    verified = await forms.stub.VerifySignature(
        pb.VerifySignatureRequest(chart_form_id=cf_id), metadata=forms.md(patient)
    )
    assert verified.valid and verified.drawn_signature_valid
    assert verified.recomputed_sha256 == verified.document_sha256 == signature.document_sha256

    certificate = await forms.stub.GetSignatureCertificate(
        pb.GetSignatureCertificateRequest(chart_form_id=cf_id), metadata=forms.md(ADMIN)
    )
    assert certificate.pdf.startswith(b"%PDF-") and len(certificate.pdf) > 1000

    # Someone with the database's superuser rights bypasses the triggers and alters an answer:
    # verification notices.
    async with forms.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            """UPDATE chart_forms SET answers = jsonb_set(answers, '{location_state}', '"Nevada"')
               WHERE id = $1""",
            uuid.UUID(cf_id),
        )
    tampered = await forms.stub.VerifySignature(
        pb.VerifySignatureRequest(chart_form_id=cf_id), metadata=forms.md(ADMIN)
    )
    assert not tampered.valid and tampered.document_sha256 == signature.document_sha256

    staff_view = await forms.stub.GetChartForm(
        pb.GetChartFormRequest(chart_form_id=cf_id), metadata=forms.md(ADMIN)
    )
    actions = [e.action for e in staff_view.events]
    assert actions[:1] == ["chart_form.assigned"] and "chart_form.signed" in actions
    logged = await forms.pool.fetchval(
        "SELECT count(*) FROM access_log WHERE patient_id = $1 AND action = 'chart_form.read'",
        uuid.UUID(patient_id),
    )
    assert logged >= 1


async def test_a_declined_consent_is_not_signed(forms: Forms) -> None:
    patient_id, patient = await forms.chart()
    cf_id = (await forms.assign(patient_id, "consent-to-treatment")).summary.id
    await forms.stub.SaveAnswers(
        pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(consent=False)),
        metadata=forms.md(patient),
    )
    sign = pb.SignChartFormRequest(
        chart_form_id=cf_id, typed_name="Ada Lovelace", agree_to_electronic_signature=True
    )
    with pytest.raises(grpc.aio.AioRpcError) as declined:
        await forms.stub.SignChartForm(sign, metadata=forms.md(patient))
    assert declined.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert precondition_kind(declined.value) == "CONSENT_DECLINED"
    message = "To sign this consent form, agree to it; if you do not agree, tell the clinic."
    assert field_errors(declined.value) == {"consent": [message]}
    # Nothing is written: no signature, the form is still the patient's to change.
    assert await forms.pool.fetchval("SELECT count(*) FROM signatures") == 0
    kept = await forms.stub.GetChartForm(
        pb.GetChartFormRequest(chart_form_id=cf_id), metadata=forms.md(ADMIN)
    )
    assert kept.summary.status == pb.CHART_FORM_STATUS_IN_PROGRESS
    assert "chart_form.signed" not in [e.action for e in kept.events]

    await forms.stub.SaveAnswers(
        pb.SaveAnswersRequest(chart_form_id=cf_id, answers=answers(consent=True)),
        metadata=forms.md(patient),
    )
    signed = await forms.stub.SignChartForm(sign, metadata=forms.md(patient))
    assert signed.chart_form_id == cf_id


async def test_signing_with_nothing_filled_in_names_every_problem_at_once(forms: Forms) -> None:
    """The unanswered required question comes with the signing fields' problems (one round
    trip, not two), in the order a page shows them: questions, agreement, typed name."""
    patient_id, patient = await forms.chart()
    cf_id = (await forms.assign(patient_id, "consent-to-treatment")).summary.id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await forms.stub.SignChartForm(
            pb.SignChartFormRequest(chart_form_id=cf_id), metadata=forms.md(patient)
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(field_errors(refused.value)) == [
        "consent",
        "agree_to_electronic_signature",
        "typed_name",
    ]
    assert await forms.pool.fetchval("SELECT count(*) FROM signatures") == 0


async def test_people_show_by_name_in_a_forms_history(forms: Forms) -> None:
    """The access log keeps a staff member's id beside their name; what people read of it (the
    history, who placed and reviewed a form) is the name, and 404s are sentences."""
    patient_id, patient = await forms.chart()
    named = Principal(kind="staff", subject=ADMIN.subject, role="admin", name="Grace Admin")
    cf = await forms.stub.AssignChartForm(
        pb.AssignChartFormRequest(patient_id=patient_id, form_id=(await forms.form_id("phq-9"))),
        metadata=forms.md(named),
    )
    assert cf.summary.assigned_by == "Grace Admin"
    recorded = await forms.pool.fetchval(
        "SELECT actor_id FROM access_log"
        " WHERE chart_form_id = $1 AND action = 'chart_form.assigned'",
        uuid.UUID(cf.summary.id),
    )
    assert recorded == f"Grace Admin ({ADMIN.subject})"
    seen = await forms.stub.GetChartForm(
        pb.GetChartFormRequest(chart_form_id=cf.summary.id), metadata=forms.md(named)
    )
    assert {e.actor for e in seen.events if e.actor_kind == "staff"} == {"Grace Admin"}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await forms.stub.GetChartForm(
            pb.GetChartFormRequest(chart_form_id=str(uuid.uuid4())), metadata=forms.md(patient)
        )
    assert missing.value.details() == "No such form."


async def test_only_a_consent_forms_yes_no_item_is_an_agreement(forms: Forms) -> None:
    def definition(
        kind: pb.FormKind.ValueType, item_type: pb.ItemType.ValueType
    ) -> pb.FormDefinition:
        agreement = pb.Item(link_id="agree", text="I agree.", type=item_type, agreement=True)
        return pb.FormDefinition(title="Photo consent", kind=kind, items=[agreement])

    for kind, item_type, where, message in (
        (pb.FORM_KIND_VISIT, pb.ITEM_TYPE_BOOLEAN, "agree", "Only consent forms"),
        (pb.FORM_KIND_CONSENT, pb.ITEM_TYPE_STRING, "items[0]", "Only a yes/no (boolean) item"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await forms.stub.CreateForm(
                pb.CreateFormRequest(definition=definition(kind, item_type)),
                metadata=forms.md(ADMIN),
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field_errors(refused.value)[where][0].startswith(message)
    created = await forms.stub.CreateForm(
        pb.CreateFormRequest(definition=definition(pb.FORM_KIND_CONSENT, pb.ITEM_TYPE_BOOLEAN)),
        metadata=forms.md(ADMIN),
    )
    assert created.definition.items[0].agreement


async def test_migration_names_the_agreements_of_shipped_consent_forms(database_url: str) -> None:
    """0007: an unedited shipped consent form gets a version with its agreement flagged and its
    unsigned chart forms move there; signed ones, a clinic's own version and visit forms stay."""
    forms_migrations = db.load_migrations("forms", resources.files("services.forms") / "migrations")
    everything = db.runtime_migrations() + forms_migrations
    conn = await asyncpg.connect(database_url)
    try:
        await db.migrate(conn, [m for m in everything if m.component != "forms" or m.version < 7])
        await library.seed(conn)
        # As the library was seeded before: no item names the agreement.
        await conn.execute(
            """UPDATE form_versions SET items = (
                   SELECT jsonb_agg(e.item - 'agreement' ORDER BY e.n)
                   FROM jsonb_array_elements(items) WITH ORDINALITY AS e (item, n))"""
        )
        ids = {
            r["library_key"]: r["id"] for r in await conn.fetch("SELECT library_key, id FROM forms")
        }
        await conn.execute(  # the clinic's own edit of the telehealth consent
            """INSERT INTO form_versions (form_id, version, title, items, created_by)
               SELECT form_id, 2, title, items, 'admin' FROM form_versions WHERE form_id = $1""",
            ids["telehealth-consent"],
        )
        await conn.execute(
            "UPDATE forms SET current_version = 2 WHERE id = $1", ids["telehealth-consent"]
        )
        patient_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO charts (patient_id, portal_access) VALUES ($1, true)", patient_id
        )
        chart_forms = {}
        for key, status in (
            ("consent-to-treatment", "in-progress"),
            ("hipaa-notice-acknowledgment", "signed"),
            ("medical-history", "not-started"),
        ):
            chart_forms[key] = await conn.fetchval(
                """INSERT INTO chart_forms (patient_id, form_id, form_version, status, origin)
                   VALUES ($1, $2, 1, $3, 'staff') RETURNING id""",
                patient_id,
                ids[key],
                status,
            )
        await conn.execute("UPDATE form_versions SET published_at = now() WHERE version = 1")

        await db.migrate(conn, everything)

        async def current(key: str) -> tuple[int, list[str]]:
            row = await conn.fetchrow(
                """SELECT v.version, v.items FROM forms f JOIN form_versions v
                       ON v.form_id = f.id AND v.version = f.current_version WHERE f.id = $1""",
                ids[key],
            )
            assert row is not None
            flagged = [i["link_id"] for i in json.loads(row["items"]) if i.get("agreement")]
            return row["version"], flagged

        assert await current("consent-to-treatment") == (2, ["consent"])
        assert await current("financial-responsibility") == (2, ["assign_benefits", "responsible"])
        assert await current("telehealth-consent") == (2, [])  # the clinic's version, kept
        assert await current("medical-history") == (1, [])
        moved = {
            key: await conn.fetchval("SELECT form_version FROM chart_forms WHERE id = $1", cf)
            for key, cf in chart_forms.items()
        }
        assert moved == {
            "consent-to-treatment": 2,
            "hipaa-notice-acknowledgment": 1,
            "medical-history": 1,
        }
    finally:
        await conn.close()


async def test_published_versions_are_immutable_and_edits_make_new_versions(forms: Forms) -> None:
    created = await forms.stub.CreateForm(
        pb.CreateFormRequest(
            definition=pb.FormDefinition(
                title="Travel history",
                kind=pb.FORM_KIND_VISIT,
                items=[
                    pb.Item(link_id="abroad", text="Travelled abroad?", type=pb.ITEM_TYPE_BOOLEAN),
                    pb.Item(
                        link_id="where",
                        text="Where?",
                        type=pb.ITEM_TYPE_STRING,
                        required=True,
                        enable_when=[
                            pb.EnableWhen(
                                question="abroad",
                                operator="=",
                                answer=struct_pb2.Value(bool_value=True),
                            )
                        ],
                    ),
                ],
            )
        ),
        metadata=forms.md(ADMIN),
    )
    form_id = created.id
    definition = created.definition
    definition.title = "Travel history (last year)"
    edited = await forms.stub.UpdateForm(
        pb.UpdateFormRequest(form_id=form_id, definition=definition), metadata=forms.md(ADMIN)
    )
    assert edited.version == 1  # nobody answered it yet: edited in place

    patient_id, patient = await forms.chart()
    cf = await forms.stub.AssignChartForm(
        pb.AssignChartFormRequest(patient_id=patient_id, form_id=form_id), metadata=forms.md(ADMIN)
    )
    await forms.stub.SaveAnswers(
        pb.SaveAnswersRequest(chart_form_id=cf.summary.id, answers=answers(abroad=False)),
        metadata=forms.md(patient),
    )
    # Hidden by its condition, "where" is not required.
    done = await forms.stub.SubmitChartForm(
        pb.SubmitChartFormRequest(chart_form_id=cf.summary.id), metadata=forms.md(patient)
    )
    assert done.summary.status == pb.CHART_FORM_STATUS_COMPLETED

    definition.title = "Travel history (last two years)"
    v2 = await forms.stub.UpdateForm(
        pb.UpdateFormRequest(form_id=form_id, definition=definition), metadata=forms.md(ADMIN)
    )
    assert v2.version == 2 and not v2.published
    answered = await forms.stub.GetChartForm(
        pb.GetChartFormRequest(chart_form_id=cf.summary.id), metadata=forms.md(ADMIN)
    )
    assert answered.form.version == 1
    assert answered.form.definition.title == "Travel history (last year)"
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await forms.pool.execute(
            "UPDATE form_versions SET items = '[]' WHERE form_id = $1 AND version = 1",
            uuid.UUID(form_id),
        )
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):
        await forms.pool.execute(
            "DELETE FROM form_versions WHERE form_id = $1 AND version = 1", uuid.UUID(form_id)
        )


async def test_portal_catalog_update_is_exact_and_reaches_charts_with_access(forms: Forms) -> None:
    with_access, patient = await forms.chart(portal_access=True)
    await forms.chart(portal_access=False)
    hipaa, consent, phq9 = [
        await forms.form_id(k)
        for k in ("hipaa-notice-acknowledgment", "consent-to-treatment", "phq-9")
    ]
    listed = await forms.stub.SetPortalForms(
        pb.SetPortalFormsRequest(form_ids=[hipaa, phq9, consent]), metadata=forms.md(ADMIN)
    )
    portal = [(i.id, i.position) for i in listed.items if i.available_in_portal]
    assert portal == [(hipaa, 1), (phq9, 2), (consent, 3)]
    mine = await forms.stub.ListChartForms(pb.ListChartFormsRequest(), metadata=forms.md(patient))
    assert [i.form_id for i in mine.items] == [hipaa, consent]  # consent forms only, in order
    assert await forms.pool.fetchval("SELECT count(*) FROM chart_forms") == 2

    # Update again with fewer forms: exactly those remain; nothing is placed twice.
    listed = await forms.stub.SetPortalForms(
        pb.SetPortalFormsRequest(form_ids=[consent, hipaa]), metadata=forms.md(ADMIN)
    )
    assert [i.id for i in listed.items if i.available_in_portal] == [consent, hipaa]
    assert await forms.pool.fetchval("SELECT count(*) FROM chart_forms") == 2
    mine = await forms.stub.ListChartForms(pb.ListChartFormsRequest(), metadata=forms.md(patient))
    assert [i.form_id for i in mine.items] == [consent, hipaa]
    assert (
        await forms.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE subject = 'portal.forms.catalog.updated'"
        )
        == 2
    )
    del with_access


@pytest.mark.parametrize("key", ["allergies", "consent-to-treatment"])
async def test_fhir_questionnaire_round_trip(forms: Forms, key: str) -> None:
    exported = await forms.stub.ExportQuestionnaire(
        pb.ExportQuestionnaireRequest(form_id=await forms.form_id(key)),
        metadata=forms.md(ADMIN),
    )
    imported = await forms.stub.ImportQuestionnaire(
        pb.ImportQuestionnaireRequest(questionnaire_json=exported.questionnaire_json),
        metadata=forms.md(ADMIN),
    )
    original = await forms.stub.GetForm(
        pb.GetFormRequest(form_id=await forms.form_id(key)), metadata=forms.md(ADMIN)
    )
    assert imported.definition == original.definition


async def settled(broker: Broker, stream: str, durable: str) -> None:
    """Wait until the consumer has every event of its stream handled and acknowledged."""

    async def probe() -> bool:
        info = await broker.js.consumer_info(stream, durable)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(probe, lambda ok: ok, timeout=20)


async def publish_access_granted(
    broker: Broker, subject: str, event_id: str, patient_id: str
) -> None:
    await broker.js.publish(
        subject,
        identity_pb2.PortalAccessChanged(patient_id=patient_id, allowed=True).SerializeToString(),
        headers={
            "Nats-Msg-Id": event_id,
            "Portal-Event-Type": "portal.events.v1.PortalAccessChanged",
        },
    )


async def test_access_granted_events_place_consent_forms_once(
    forms: Forms, broker: Broker, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    consent, hipaa = [
        await forms.form_id(k) for k in ("consent-to-treatment", "hipaa-notice-acknowledgment")
    ]
    await forms.stub.SetPortalForms(
        pb.SetPortalFormsRequest(form_ids=[hipaa, consent]), metadata=forms.md(ADMIN)
    )
    patient_id = str(uuid.uuid4())
    subject = f"{prefix}.portal_access.granted"
    sub = Subscription(
        "forms-access-test", name, f"{prefix}.portal_access.*", charts.on_portal_access_changed
    )
    consumer = EventConsumer(forms.pool, broker, sub, fetch_timeout=0.5, ack_wait=1.0)
    await publish_access_granted(broker, subject, str(uuid.uuid4()), patient_id)
    await publish_access_granted(broker, subject, str(uuid.uuid4()), patient_id)  # granted again
    # The first event is handled, its ack lost, and it is delivered again: handled once.
    psub = await consumer.subscribe()
    [first] = await psub.fetch(1, timeout=5)
    assert await consumer.process(first) is True
    assert await consumer.process(first) is True

    task = asyncio.create_task(consumer.run())
    try:
        await settled(broker, name, "forms-access-test")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    rows = await forms.pool.fetch(
        "SELECT form_id FROM chart_forms WHERE patient_id = $1", uuid.UUID(patient_id)
    )
    assert sorted(str(r["form_id"]) for r in rows) == sorted([consent, hipaa])
    patient = Principal(kind="patient", subject=patient_id)
    mine = await forms.stub.ListChartForms(pb.ListChartFormsRequest(), metadata=forms.md(patient))
    assert [i.form_id for i in mine.items] == [hipaa, consent]
    assigned = await forms.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE subject = 'portal.forms.chart_form.assigned'"
    )
    assert assigned == 2


async def test_visit_forms_follow_appointments_once(
    forms: Forms, broker: Broker, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    type_id, appointment_id = str(uuid.uuid4()), str(uuid.uuid4())
    phq9, history = [await forms.form_id(k) for k in ("phq-9", "medical-history")]
    await forms.stub.SetVisitForms(
        pb.SetVisitFormsRequest(appointment_type_id=type_id, form_ids=[history, phq9]),
        metadata=forms.md(ADMIN),
    )
    patient_id, patient = await forms.chart()
    [sub] = appointments.subscriptions()
    sub = type(sub)("forms-appointments-test", name, f"{prefix}.appointment.*", sub.handler)
    consumer = EventConsumer(forms.pool, broker, sub, fetch_timeout=0.5, ack_wait=1.0)

    async def publish(event: str, start: datetime, event_id: str = "") -> None:
        payload = AppointmentChanged(
            appointment_id=appointment_id, patient_id=patient_id, appointment_type_id=type_id
        )
        payload.start.FromDatetime(start)
        await broker.js.publish(
            f"{prefix}.appointment.{event}",
            payload.SerializeToString(),
            headers={
                "Nats-Msg-Id": event_id or str(uuid.uuid4()),
                "Portal-Event-Type": AppointmentChanged.DESCRIPTOR.full_name,
            },
        )

    first, later = datetime(2030, 5, 1, 9, tzinfo=UTC), datetime(2030, 5, 3, 14, tzinfo=UTC)
    booked_id = str(uuid.uuid4())
    await publish("booked", first, booked_id)
    psub = await consumer.subscribe()
    [msg] = await psub.fetch(1, timeout=5)
    assert await consumer.process(msg) and await consumer.process(msg)  # redelivered: once
    await publish("rescheduled", later)

    task = asyncio.create_task(consumer.run())
    try:
        await settled(broker, name, "forms-appointments-test")
        mine = await forms.stub.ListChartForms(
            pb.ListChartFormsRequest(), metadata=forms.md(patient)
        )
        assert [i.form_id for i in mine.items] == [history, phq9]
        assert {i.due.ToDatetime(tzinfo=UTC) for i in mine.items} == {later}

        # The patient starts one; cancelling withdraws only the other.
        await forms.stub.SaveAnswers(
            pb.SaveAnswersRequest(chart_form_id=mine.items[1].id),  # PHQ-9
            metadata=forms.md(patient),
        )
        await publish("cancelled", later)
        await settled(broker, name, "forms-appointments-test")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    mine = await forms.stub.ListChartForms(pb.ListChartFormsRequest(), metadata=forms.md(patient))
    assert [i.form_id for i in mine.items] == [phq9]
    staff = await forms.stub.ListChartForms(
        pb.ListChartFormsRequest(patient_id=patient_id), metadata=forms.md(ADMIN)
    )
    assert sorted(i.status for i in staff.items) == sorted(
        [pb.CHART_FORM_STATUS_IN_PROGRESS, pb.CHART_FORM_STATUS_WITHDRAWN]
    )
