"""The scheduling service over real gRPC against real PostgreSQL (and NATS for the events)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from portal.events.v1 import scheduling_pb2 as events
from portal.events.v1.identity_pb2 import PatientRegistered
from portal.scheduling.v1 import scheduling_pb2 as pb
from portal.scheduling.v1 import scheduling_pb2_grpc as pb_grpc
from services.gateway.schedule_view import alternatives
from services.runtime import db
from services.runtime.broker import Broker
from services.runtime.consumer import EventConsumer
from services.runtime.errors import field_errors, not_found_kind, precondition_kind
from services.runtime.outbox import OutboxRelay
from services.runtime.principal import Principal, PrincipalSigner
from services.scheduling import patients
from services.scheduling.servicer import SchedulingServicer
from services.scheduling.settings import SchedulingSettings
from tests.conftest import principal_signer, principal_verifier
from tests.integration.events import stream_messages

DESK = Principal(
    kind="staff", subject="11111111-1111-1111-1111-111111111111", role="front_desk", source="::1"
)
# Providers and appointment types are the admin's (services/scheduling/roles.py).
ADMIN = replace(DESK, subject="22222222-2222-2222-2222-222222222222", role="admin")
EVERY_DAY = [
    pb.WeeklyRange(weekday=d, start="08:00", end="18:00")  # type: ignore[arg-type]
    for d in range(1, 8)
]
HOLDING = "status IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')"


def patient(patient_id: str | None = None) -> Principal:
    return Principal(
        kind="patient",
        subject=patient_id or str(uuid.uuid4()),
        realm="onsite",
        source="198.51.100.7",
    )


async def known(pool: asyncpg.Pool, *patient_ids: str) -> None:
    """Put patients in scheduling's projection, as their patient.registered events would."""
    await pool.execute(
        "INSERT INTO patients (id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING",
        [uuid.UUID(p) for p in patient_ids],
    )


@dataclass
class Scheduling:
    stub: pb_grpc.SchedulingServiceAsyncStub
    codec: PrincipalSigner
    pool: asyncpg.Pool

    def md(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        return self.codec.metadata(principal)

    async def known_patient(self) -> Principal:
        """A patient scheduling knows (its row in the patients projection), as staff book for."""
        me = patient()
        await known(self.pool, me.subject)
        return me

    async def provider(self, name: str = "Dr. Rivera") -> str:
        made = await self.stub.CreateProvider(
            pb.CreateProviderRequest(display_name=name), metadata=self.md(ADMIN)
        )
        await self.stub.ReplaceWorkingHours(
            pb.ReplaceWorkingHoursRequest(provider_id=made.id, weekly=EVERY_DAY),
            metadata=self.md(DESK),
        )
        return str(made.id)

    async def kind(self, providers: list[str], **fields: int | bool) -> pb.AppointmentType:
        values: dict[str, Any] = {
            "minimum_notice_minutes": 0,
            "cancellation_notice_minutes": 0,
            "duration_minutes": 30,
            "bookable_online": True,
        } | fields
        return await self.stub.CreateAppointmentType(
            pb.CreateAppointmentTypeRequest(
                fields=pb.AppointmentTypeFields(
                    name=f"Visit {uuid.uuid4().hex[:6]}",
                    provider_ids=providers,
                    **values,
                )
            ),
            metadata=self.md(ADMIN),
        )

    async def slots(
        self, kind: pb.AppointmentType, principal: Principal = DESK, limit: int = 20, **more: Any
    ) -> list[pb.Slot]:
        found = await self.stub.FindAvailability(
            pb.FindAvailabilityRequest(appointment_type_id=kind.id, limit=limit, **more),
            metadata=self.md(principal),
        )
        return list(found.slots)

    async def set_status(
        self, appointment_id: str, status: pb.AppointmentStatus.ValueType
    ) -> pb.Appointment:
        return await self.stub.SetAppointmentStatus(
            pb.SetAppointmentStatusRequest(appointment_id=appointment_id, status=status),
            metadata=self.md(DESK),
        )

    async def book(
        self, principal: Principal, kind: pb.AppointmentType, slot: pb.Slot, **more: str
    ) -> pb.Appointment:
        return await self.stub.BookAppointment(
            pb.BookAppointmentRequest(
                appointment_type_id=kind.id, provider_id=slot.provider_id, start=slot.start, **more
            ),
            metadata=self.md(principal),
        )


@asynccontextmanager
async def serving(database_url: str) -> AsyncIterator[Scheduling]:
    """A scheduling server of its own (its own pool and caches), as another process would be."""
    pool = await db.create_pool(database_url, max_size=10)
    async with pool.acquire() as conn:
        await db.migrate(
            conn,
            db.runtime_migrations()
            + db.load_migrations(
                "scheduling", resources.files("services.scheduling") / "migrations"
            ),
        )
    codec = principal_signer()
    server = grpc.aio.server()
    servicer = SchedulingServicer(pool, principal_verifier(), SchedulingSettings.from_env({}))
    pb_grpc.add_SchedulingServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Scheduling(pb_grpc.SchedulingServiceStub(channel), codec, pool)
    finally:
        await channel.close(grace=None)
        await server.stop(None)
        await pool.close()


@pytest.fixture
async def scheduling(database_url: str) -> AsyncIterator[Scheduling]:
    async with serving(database_url) as served:
        yield served


async def outcome(call: asyncio.Future[pb.Appointment] | object) -> pb.Appointment | str:
    try:
        return await call  # type: ignore[misc,no-any-return]
    except grpc.aio.AioRpcError as exc:
        return precondition_kind(exc) or exc.code().name


async def test_fifty_concurrent_bookings_of_one_slot_book_exactly_one(
    scheduling: Scheduling,
) -> None:
    kind = await scheduling.kind([await scheduling.provider()])
    [slot] = await scheduling.slots(kind, limit=1)
    results = await asyncio.gather(
        *(outcome(scheduling.book(patient(), kind, slot)) for _ in range(50))
    )
    booked = [r for r in results if isinstance(r, pb.Appointment)]
    assert len(booked) == 1 and results.count("SLOT_TAKEN") == 49
    assert await scheduling.pool.fetchval(f"SELECT count(*) FROM appointments WHERE {HOLDING}") == 1
    # The loser hears of fresh alternatives, and the taken time is not among them.
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await scheduling.book(patient(), kind, slot)
    offered = alternatives(taken.value)
    assert offered and all(s.start != slot.start for s in offered)
    assert taken.value.details() == "That time was just taken. Please choose another time."


async def test_overlapping_starts_on_a_finer_grid_book_only_non_overlapping_ones(
    scheduling: Scheduling,
) -> None:
    kind = await scheduling.kind(
        [await scheduling.provider()],
        duration_minutes=30,
        slot_interval_minutes=5,
        buffer_after_minutes=5,
    )
    slots = await scheduling.slots(kind, limit=24)  # two hours of 5-minute starts
    results = await asyncio.gather(*(outcome(scheduling.book(patient(), kind, s)) for s in slots))
    booked = [r for r in results if isinstance(r, pb.Appointment)]
    assert booked and all(isinstance(r, pb.Appointment) or r == "SLOT_TAKEN" for r in results)
    overlaps = await scheduling.pool.fetchval(
        f"""SELECT count(*) FROM appointments a JOIN appointments b
            ON a.provider_id = b.provider_id AND a.id < b.id AND a.blocked && b.blocked
            WHERE a.{HOLDING} AND b.{HOLDING}"""
    )
    assert overlaps == 0
    # Every refused start overlapped a booked one (35 minutes blocked each).
    starts = sorted(b.start.seconds for b in booked)
    for s, r in zip(slots, results, strict=True):
        if r == "SLOT_TAKEN":
            assert any(abs(s.start.seconds - b) < 35 * 60 for b in starts)


async def test_an_idempotent_retry_returns_the_same_appointment(scheduling: Scheduling) -> None:
    kind = await scheduling.kind([await scheduling.provider()])
    first, second = await scheduling.slots(kind, limit=2)
    me = patient()
    results = await asyncio.gather(
        *(scheduling.book(me, kind, first, idempotency_key="key-1") for _ in range(10))
    )
    assert len({r.id for r in results}) == 1
    again = await scheduling.book(me, kind, first, idempotency_key="key-1")
    assert again.id == results[0].id
    assert await scheduling.pool.fetchval("SELECT count(*) FROM appointments") == 1
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await scheduling.book(me, kind, second, idempotency_key="key-1")
    assert precondition_kind(reused.value) == "IDEMPOTENCY_KEY_REUSED"
    # Keys are per caller: another patient's "key-1" is a new booking.
    other = await scheduling.book(patient(), kind, second, idempotency_key="key-1")
    assert other.id != results[0].id


async def test_reschedule_is_atomic_and_keeps_the_id(scheduling: Scheduling) -> None:
    kind = await scheduling.kind([await scheduling.provider()])
    first, second, third = await scheduling.slots(kind, limit=3)
    me, them = patient(), patient()
    mine = await scheduling.book(me, kind, first)
    await scheduling.book(them, kind, second)
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await scheduling.stub.RescheduleAppointment(
            pb.RescheduleAppointmentRequest(appointment_id=mine.id, start=second.start),
            metadata=scheduling.md(me),
        )
    assert precondition_kind(taken.value) == "SLOT_TAKEN" and alternatives(taken.value)
    still = await scheduling.stub.GetAppointment(
        pb.GetAppointmentRequest(appointment_id=mine.id), metadata=scheduling.md(me)
    )
    assert still.start == first.start and still.status == pb.APPOINTMENT_STATUS_BOOKED

    moved = await scheduling.stub.RescheduleAppointment(
        pb.RescheduleAppointmentRequest(appointment_id=mine.id, start=third.start),
        metadata=scheduling.md(me),
    )
    assert moved.id == mine.id and moved.start == third.start
    # The old time is free again.
    assert first.start in [s.start for s in await scheduling.slots(kind, limit=3)]
    event = await scheduling.pool.fetchrow(
        "SELECT payload FROM outbox WHERE subject = 'portal.scheduling.appointment.rescheduled'"
    )
    assert event is not None
    payload = events.AppointmentChanged.FromString(event["payload"])
    assert payload.previous_start == first.start and payload.start == third.start


async def test_a_patient_sees_and_changes_only_their_own_appointments(
    scheduling: Scheduling,
) -> None:
    kind = await scheduling.kind([await scheduling.provider()])
    first, second = await scheduling.slots(kind, limit=2)
    ada, grace = patient(), patient()
    # A patient id in the request is ignored for patients: Grace books for herself.
    theirs = await scheduling.book(grace, kind, second, patient_id=ada.subject)
    assert theirs.patient_id == grace.subject
    mine = await scheduling.book(ada, kind, first)
    for call in (
        scheduling.stub.GetAppointment(
            pb.GetAppointmentRequest(appointment_id=theirs.id), metadata=scheduling.md(ada)
        ),
        scheduling.stub.CancelAppointment(
            pb.CancelAppointmentRequest(appointment_id=theirs.id), metadata=scheduling.md(ada)
        ),
        scheduling.stub.RescheduleAppointment(
            pb.RescheduleAppointmentRequest(appointment_id=theirs.id, start=first.start),
            metadata=scheduling.md(ada),
        ),
    ):
        assert await outcome(call) == "NOT_FOUND"
    listed = await scheduling.stub.ListAppointments(
        pb.ListAppointmentsRequest(patient_id=grace.subject), metadata=scheduling.md(ada)
    )
    assert [a.id for a in listed.items] == [mine.id]
    # Patients cannot reach staff methods.
    denied = scheduling.stub.SetAppointmentStatus(
        pb.SetAppointmentStatusRequest(
            appointment_id=mine.id, status=pb.APPOINTMENT_STATUS_ARRIVED
        ),
        metadata=scheduling.md(ada),
    )
    assert await outcome(denied) == "PERMISSION_DENIED"
    # Every read and change was logged with the actor and the source address.
    logged = await scheduling.pool.fetch(
        "SELECT action, actor_kind, source_address FROM access_log WHERE patient_id = $1",
        uuid.UUID(ada.subject),
    )
    assert {r["action"] for r in logged} >= {"appointment.book", "appointment.list"}
    assert {r["source_address"] for r in logged} == {"198.51.100.7"}


async def test_cancel_status_and_cancellation_notice(scheduling: Scheduling) -> None:
    provider = await scheduling.provider()
    strict = await scheduling.kind([provider], cancellation_notice_minutes=43200)
    [slot] = await scheduling.slots(strict, limit=1)
    me = patient()
    late = await scheduling.book(me, strict, slot)
    refused = scheduling.stub.CancelAppointment(
        pb.CancelAppointmentRequest(appointment_id=late.id), metadata=scheduling.md(me)
    )
    assert await outcome(refused) == "CANCELLATION_TOO_LATE"
    # Staff may cancel at any time; the reason is kept and a repeat changes nothing.
    for _ in range(2):
        cancelled = await scheduling.stub.CancelAppointment(
            pb.CancelAppointmentRequest(appointment_id=late.id, reason="Called in sick"),
            metadata=scheduling.md(DESK),
        )
        assert cancelled.status == pb.APPOINTMENT_STATUS_CANCELLED
        assert cancelled.cancellation_reason == "Called in sick"
    # The cancelled time is bookable again.
    await scheduling.book(patient(), strict, slot)
    # Staff record a visit of yesterday (inside the hours): it may be marked arrived.
    visit = await scheduling.book(
        DESK, strict, past_slot(provider), patient_id=(await scheduling.known_patient()).subject
    )
    arrived = await scheduling.set_status(visit.id, pb.APPOINTMENT_STATUS_ARRIVED)
    assert arrived.status == pb.APPOINTMENT_STATUS_ARRIVED
    back = scheduling.set_status(visit.id, pb.APPOINTMENT_STATUS_NOSHOW)
    assert await outcome(back) == "STATUS_TRANSITION"
    subjects = [
        r["subject"].rsplit(".", 1)[1]
        for r in await scheduling.pool.fetch("SELECT subject FROM outbox ORDER BY seq")
    ]
    assert subjects == ["booked", "cancelled", "booked", "booked", "status_changed"]


def past_slot(provider_id: str, days_ago: int = 1) -> pb.Slot:
    """10:00 UTC `days_ago` days ago: inside EVERY_DAY's hours (the service's zone is UTC)."""
    day = int(time.time()) // 86400 - days_ago
    return pb.Slot(provider_id=provider_id, start=Timestamp(seconds=day * 86400 + 10 * 3600))


async def test_visit_statuses_wait_for_the_appointments_day(scheduling: Scheduling) -> None:
    """Arrived and fulfilled from the start of the appointment's day, no-show once it was due:
    a future appointment is not marked by a mis-click."""
    provider = await scheduling.provider()
    kind = await scheduling.kind([provider])
    ahead = past_slot(provider, days_ago=-2)  # the day after tomorrow
    me = await scheduling.known_patient()
    future = await scheduling.book(DESK, kind, ahead, patient_id=me.subject)
    for status in (
        pb.APPOINTMENT_STATUS_ARRIVED,
        pb.APPOINTMENT_STATUS_FULFILLED,
        pb.APPOINTMENT_STATUS_NOSHOW,
    ):
        refused = scheduling.set_status(future.id, status)
        assert await outcome(refused) == "STATUS_TOO_EARLY"
    unchanged = await scheduling.stub.GetAppointment(
        pb.GetAppointmentRequest(appointment_id=future.id), metadata=scheduling.md(DESK)
    )
    assert unchanged.status == pb.APPOINTMENT_STATUS_BOOKED
    missed = await scheduling.book(DESK, kind, past_slot(provider), patient_id=me.subject)
    noshow = await scheduling.set_status(missed.id, pb.APPOINTMENT_STATUS_NOSHOW)
    assert noshow.status == pb.APPOINTMENT_STATUS_NOSHOW


async def test_a_patient_cannot_be_in_two_appointments_at_once(scheduling: Scheduling) -> None:
    rivera, okafor = await scheduling.provider(), await scheduling.provider("Dr. Okafor")
    # An hour's notice: the soonest time stays ahead of the clock while the test runs.
    kind = await scheduling.kind([rivera, okafor], minimum_notice_minutes=60)
    found = await scheduling.slots(kind, limit=60)
    both = sorted(
        {s.start.seconds for s in found if s.provider_id == rivera}
        & {s.start.seconds for s in found if s.provider_id == okafor}
    )
    t0, t1 = both[0], both[1]
    t2 = next(t for t in both if t >= t1 + 3600)

    def at(provider: str, start: int) -> pb.Slot:
        return next(s for s in found if s.provider_id == provider and s.start.seconds == start)

    first, same_time, later = at(rivera, t0), at(okafor, t0), at(okafor, t2)
    me = await scheduling.known_patient()
    mine = await scheduling.book(me, kind, first)
    # Again at the same time with another provider: refused, for the patient and for staff.
    with pytest.raises(grpc.aio.AioRpcError) as busy:
        await scheduling.book(me, kind, same_time)
    assert precondition_kind(busy.value) == "PATIENT_BUSY"
    assert (busy.value.details() or "").startswith("You already have an appointment at that time.")
    assert not alternatives(busy.value)
    with pytest.raises(grpc.aio.AioRpcError) as desk:
        await scheduling.book(DESK, kind, same_time, patient_id=me.subject)
    assert (desk.value.details() or "").startswith("This patient already has an appointment")
    # Racing bookings for one patient at one time with both providers: one wins.
    other = await scheduling.known_patient()
    results = await asyncio.gather(
        *(outcome(scheduling.book(other, kind, s)) for s in (at(rivera, t1), at(okafor, t1)) * 5)
    )
    assert len([r for r in results if isinstance(r, pb.Appointment)]) == 1
    # Moving another appointment onto that time is refused too, and changes nothing.
    second = await scheduling.book(me, kind, later)
    with pytest.raises(grpc.aio.AioRpcError) as moved:
        await scheduling.stub.RescheduleAppointment(
            pb.RescheduleAppointmentRequest(appointment_id=second.id, start=same_time.start),
            metadata=scheduling.md(me),
        )
    assert precondition_kind(moved.value) == "PATIENT_BUSY"
    still = await scheduling.stub.GetAppointment(
        pb.GetAppointmentRequest(appointment_id=second.id), metadata=scheduling.md(me)
    )
    assert still.start == later.start
    # Find Available offers the patient no time overlapping their own (staff still see them),
    # except the appointment they are moving.
    mine_at = {s.start.seconds for s in await scheduling.slots(kind, me, limit=60)}
    assert t0 not in mine_at and t2 not in mine_at and t1 in mine_at
    assert t0 in {s.start.seconds for s in await scheduling.slots(kind, DESK, limit=60)}
    # Staff booking for the patient ask for the same, and that read is in the access log.
    for_me = await scheduling.slots(kind, DESK, limit=60, patient_id=me.subject)
    assert {s.start.seconds for s in for_me} == mine_at
    assert await scheduling.pool.fetchval(
        "SELECT count(*) FROM access_log WHERE action = 'appointment.availability'"
        " AND patient_id = $1 AND actor_kind = 'staff'",
        uuid.UUID(me.subject),
    )
    moving = {
        s.start.seconds
        for s in await scheduling.slots(kind, me, limit=60, moving_appointment_id=second.id)
    }
    assert t2 in moving and t0 not in moving
    # A cancelled appointment frees the patient too.
    await scheduling.stub.CancelAppointment(
        pb.CancelAppointmentRequest(appointment_id=mine.id), metadata=scheduling.md(me)
    )
    assert (await scheduling.book(me, kind, same_time)).start == first.start


async def test_deactivated_provider_keeps_appointments_and_offers_no_times(
    scheduling: Scheduling,
) -> None:
    provider = await scheduling.provider()
    kind = await scheduling.kind([provider])
    [slot] = await scheduling.slots(kind, limit=1)
    me = await scheduling.known_patient()
    kept = await scheduling.book(me, kind, slot)
    await scheduling.stub.DeactivateProvider(
        pb.DeactivateProviderRequest(provider_id=provider), metadata=scheduling.md(ADMIN)
    )
    assert await scheduling.slots(kind) == []
    listed = await scheduling.stub.ListAppointments(
        pb.ListAppointmentsRequest(), metadata=scheduling.md(me)
    )
    assert [a.id for a in listed.items] == [kept.id]
    assert await outcome(scheduling.book(DESK, kind, slot, patient_id=me.subject)) in (
        "PROVIDER_INACTIVE",
    )
    providers = await scheduling.stub.ListProviders(
        pb.ListProvidersRequest(include_inactive=True), metadata=scheduling.md(me)
    )
    assert list(providers.items) == []
    types = await scheduling.stub.ListAppointmentTypes(
        pb.ListAppointmentTypesRequest(), metadata=scheduling.md(me)
    )
    assert list(types.items) == []


async def test_patients_book_only_offered_times_and_staff_within_hours(
    scheduling: Scheduling,
) -> None:
    provider = await scheduling.provider()
    kind = await scheduling.kind([provider], slot_interval_minutes=30)
    tomorrow = Timestamp()
    tomorrow.FromSeconds((int(time.time()) // 86400 + 1) * 86400 + 9 * 3600)  # 09:00 UTC
    [slot] = await scheduling.slots(kind, DESK, 1, **{"from": tomorrow})
    off_grid = pb.Slot(provider_id=provider)
    off_grid.start.FromSeconds(slot.start.seconds + 7 * 60)
    me = await scheduling.known_patient()
    with pytest.raises(grpc.aio.AioRpcError) as unavailable:
        await scheduling.book(me, kind, off_grid)
    assert precondition_kind(unavailable.value) == "SLOT_UNAVAILABLE"
    assert slot.start in [a.start for a in alternatives(unavailable.value)]
    staff_booked = await scheduling.book(DESK, kind, off_grid, patient_id=me.subject)
    assert staff_booked.patient_id == me.subject
    # Time off removes times; outside hours nobody books.
    night = pb.Slot(provider_id=provider)
    night.start.FromSeconds(slot.start.seconds - slot.start.seconds % 86400 + 2 * 3600)
    assert await outcome(scheduling.book(DESK, kind, night, patient_id=me.subject)) == (
        "SLOT_UNAVAILABLE"
    )
    # A type not bookable online is invisible to patients; one staff booked for them they may
    # cancel but not move (they cannot pick its times).
    hidden = await scheduling.kind([provider], bookable_online=False)
    assert await outcome(scheduling.book(me, hidden, slot)) == "NOT_FOUND"
    later = pb.Slot(provider_id=provider)
    later.start.FromSeconds(slot.start.seconds + 3 * 3600)
    desk_booked = await scheduling.book(DESK, hidden, later, patient_id=me.subject)
    move = scheduling.stub.RescheduleAppointment(
        pb.RescheduleAppointmentRequest(appointment_id=desk_booked.id, start=slot.start),
        metadata=scheduling.md(me),
    )
    assert await outcome(move) == "NOT_BOOKABLE_ONLINE"


async def test_a_search_sees_hours_changed_through_another_process(
    scheduling: Scheduling, database_url: str
) -> None:
    """Each process keeps the hours it parsed (HoursCache); a change made through another one
    shows in its very next search."""
    provider = await scheduling.provider()
    kind = await scheduling.kind([provider], slot_interval_minutes=30)
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * 86400))
    start = Timestamp()
    start.FromSeconds((int(time.time()) // 86400 + 2) * 86400)  # that day's 00:00 UTC

    def hours_of(slots: list[pb.Slot]) -> set[int]:
        return {
            s.start.seconds % 86400 // 3600
            for s in slots
            if s.start.seconds < start.seconds + 86400
        }

    async with serving(database_url) as other:
        first = await scheduling.slots(kind, DESK, 20, **{"from": start})
        assert hours_of(first) == set(range(8, 18))  # EVERY_DAY: 08:00-18:00 UTC
        await other.stub.ReplaceWorkingHours(
            pb.ReplaceWorkingHoursRequest(
                provider_id=provider,
                weekly=[
                    pb.WeeklyRange(weekday=d, start="13:00", end="15:00")  # type: ignore[arg-type]
                    for d in range(1, 8)
                ],
            ),
            metadata=scheduling.md(DESK),
        )
        assert hours_of(await scheduling.slots(kind, DESK, 20, **{"from": start})) == {13, 14}
        override = pb.SetDateOverrideRequest(
            provider_id=provider, date=day, ranges=[pb.TimeRange(start="06:00", end="07:00")]
        )
        await other.stub.SetDateOverride(override, metadata=scheduling.md(DESK))
        assert hours_of(await scheduling.slots(kind, DESK, 20, **{"from": start})) == {6}
        await other.stub.RemoveDateOverride(
            pb.RemoveDateOverrideRequest(provider_id=provider, date=day),
            metadata=scheduling.md(DESK),
        )
        assert hours_of(await scheduling.slots(kind, DESK, 20, **{"from": start})) == {13, 14}


async def test_invalid_input_names_the_fields(scheduling: Scheduling) -> None:
    provider = await scheduling.provider()
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await scheduling.stub.ReplaceWorkingHours(
            pb.ReplaceWorkingHoursRequest(
                provider_id=provider,
                weekly=[
                    pb.WeeklyRange(weekday=pb.WEEKDAY_MONDAY, start="9am", end="12:00"),
                    pb.WeeklyRange(weekday=pb.WEEKDAY_TUESDAY, start="12:00", end="11:00"),
                    pb.WeeklyRange(weekday=pb.WEEKDAY_FRIDAY, start="09:00", end="12:00"),
                    pb.WeeklyRange(weekday=pb.WEEKDAY_FRIDAY, start="11:00", end="13:00"),
                ],
            ),
            metadata=scheduling.md(DESK),
        )
    assert set(field_errors(bad.value)) == {"weekly[0].start", "weekly[1].end", "weekly"}
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await scheduling.stub.CreateAppointmentType(
            pb.CreateAppointmentTypeRequest(
                fields=pb.AppointmentTypeFields(name=" ", duration_minutes=2, horizon_days=0)
            ),
            metadata=scheduling.md(ADMIN),
        )
    assert set(field_errors(bad.value)) == {"name", "duration_minutes", "horizon_days"}
    hours = await scheduling.stub.GetWorkingHours(
        pb.GetWorkingHoursRequest(provider_id=provider), metadata=scheduling.md(DESK)
    )
    assert len(hours.weekly) == 7 and hours.time_zone == "UTC"
    # Instants far outside the years a calendar reads (a day's bounds must stay instants).
    year_9999 = Timestamp(seconds=253402214400)  # 9999-12-31T00:00:00Z
    kind = await scheduling.kind([provider])
    me = await scheduling.known_patient()
    far = pb.Slot(provider_id=provider, start=year_9999)
    search = pb.FindAvailabilityRequest(appointment_type_id=kind.id)
    getattr(search, "from").CopyFrom(year_9999)
    for call in (
        scheduling.stub.AddTimeOff(
            pb.AddTimeOffRequest(provider_id=provider, start=Timestamp(seconds=0), end=year_9999),
            metadata=scheduling.md(DESK),
        ),
        scheduling.stub.FindAvailability(search, metadata=scheduling.md(DESK)),
        scheduling.book(DESK, kind, far, patient_id=me.subject),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await call
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Use a time from 1970 to 2199." in str(field_errors(bad.value)), bad.value


async def test_events_reach_the_stream_with_complete_payloads(
    scheduling: Scheduling, broker: Broker, stream: tuple[str, str]
) -> None:
    kind = await scheduling.kind([await scheduling.provider()])
    [slot] = await scheduling.slots(kind, limit=1)
    me = patient()
    booked = await scheduling.book(me, kind, slot)
    # The service publishes on portal.scheduling.>, which another stream may own on a shared
    # broker: move this test's rows under the test stream's own prefix.
    name, prefix = stream
    await scheduling.pool.execute(
        "UPDATE outbox SET subject = $1 || substr(subject, length('portal') + 1)", prefix
    )
    relay = OutboxRelay(scheduling.pool, broker, stream=name, subjects=[f"{prefix}.>"])
    assert await relay.drain() == 1
    [message] = await stream_messages(broker, name, f"{prefix}.>")
    assert message.subject == f"{prefix}.scheduling.appointment.booked"
    payload = events.AppointmentChanged.FromString(message.data)
    assert (payload.appointment_id, payload.patient_id, payload.provider_id) == (
        booked.id,
        me.subject,
        slot.provider_id,
    )
    assert payload.appointment_type_id == kind.id and payload.status == "booked"
    assert payload.start == slot.start and payload.end == slot.end


async def test_work_queue_holds_what_patients_changed_online(scheduling: Scheduling) -> None:
    """Bookings, cancellations and reschedules made in the portal wait for staff; staff's own
    changes do not, and a staff change to a patient's booking takes it out of the queue."""
    kind = await scheduling.kind([await scheduling.provider()])
    first, second, third, fourth, fifth = await scheduling.slots(kind, limit=5)
    me = await scheduling.known_patient()
    booked = await scheduling.book(me, kind, first)
    cancelled = await scheduling.book(me, kind, second)
    await scheduling.stub.CancelAppointment(
        pb.CancelAppointmentRequest(appointment_id=cancelled.id), metadata=scheduling.md(me)
    )
    moved = await scheduling.book(me, kind, third)
    await scheduling.stub.RescheduleAppointment(
        pb.RescheduleAppointmentRequest(appointment_id=moved.id, start=fourth.start),
        metadata=scheduling.md(me),
    )
    await scheduling.book(DESK, kind, fifth, patient_id=me.subject)  # booked by staff

    async def queue(status: str = "", kind_filter: str = "") -> list[tuple[str, str]]:
        reply = await scheduling.stub.ListWorkQueue(
            pb.ListWorkQueueRequest(status=status, kind=kind_filter), metadata=scheduling.md(DESK)
        )
        assert reply.total == len(reply.items)
        assert all(i.kind == "portal_booking" and i.patient_id == me.subject for i in reply.items)
        return [(i.id, i.status) for i in reply.items]

    waiting = [(moved.id, "rescheduled"), (cancelled.id, "cancelled"), (booked.id, "booked")]
    assert await queue() == waiting  # newest first
    assert await queue(kind_filter="portal_booking") == waiting
    assert await queue("cancelled") == [(cancelled.id, "cancelled")]
    assert await queue(kind_filter="refill_request") == []  # another service's kind
    assert await queue("approved") == []  # another service's status
    counted = await scheduling.stub.ListWorkQueue(
        pb.ListWorkQueueRequest(count_only=True), metadata=scheduling.md(DESK)
    )
    assert (counted.total, list(counted.items)) == (3, [])
    listed = await scheduling.stub.ListWorkQueue(
        pb.ListWorkQueueRequest(status="rescheduled"), metadata=scheduling.md(DESK)
    )
    assert listed.items[0].summary.startswith(f"Rescheduled online: {kind.name} with Dr. Rivera, ")

    # Staff move the patient's booking: it no longer waits for them.
    await scheduling.stub.RescheduleAppointment(
        pb.RescheduleAppointmentRequest(appointment_id=booked.id, start=second.start),
        metadata=scheduling.md(DESK),
    )
    assert await queue() == waiting[:2]

    # Patients cannot read the queue.
    denied = scheduling.stub.ListWorkQueue(pb.ListWorkQueueRequest(), metadata=scheduling.md(me))
    assert await outcome(denied) == "PERMISSION_DENIED"


async def test_staff_book_only_for_patients_scheduling_has_heard_of(
    scheduling: Scheduling, broker: Broker, stream: tuple[str, str]
) -> None:
    """A staff booking for a patient identity never announced is NOT_FOUND and writes nothing;
    once scheduling has handled the patient.registered event, the same booking succeeds. A
    patient books for themselves without being looked up."""
    kind = await scheduling.kind([await scheduling.provider()])
    first, second = await scheduling.slots(kind, limit=2)
    newcomer = str(uuid.uuid4())
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await scheduling.book(DESK, kind, first, patient_id=newcomer, idempotency_key="desk-1")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert unknown.value.details() == "No such patient."
    assert not_found_kind(unknown.value) == "patient"
    for table in ("appointments", "idempotency_keys", "outbox", "access_log"):
        assert await scheduling.pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table

    # identity announces the patient; scheduling's consumer handles it (a redelivery: once).
    name, prefix = stream
    [registered] = patients.SUBSCRIPTIONS
    sub = replace(
        registered,
        durable="scheduling-patients-test",
        stream=name,
        subject=f"{prefix}.identity.patient.registered",
    )
    await broker.js.publish(
        sub.subject,
        PatientRegistered(patient_id=newcomer).SerializeToString(),
        headers={
            "Nats-Msg-Id": str(uuid.uuid4()),
            "Portal-Event-Type": PatientRegistered.DESCRIPTOR.full_name,
        },
    )
    consumer = EventConsumer(scheduling.pool, broker, sub, fetch_timeout=0.5, ack_wait=1.0)
    psub = await consumer.subscribe()
    [msg] = await psub.fetch(1, timeout=5)
    assert await consumer.process(msg) and await consumer.process(msg)
    await msg.ack()
    assert await scheduling.pool.fetchval("SELECT count(*) FROM patients") == 1

    booked = await scheduling.book(DESK, kind, first, patient_id=newcomer, idempotency_key="desk-1")
    assert booked.patient_id == newcomer
    again = await scheduling.book(DESK, kind, first, patient_id=newcomer, idempotency_key="desk-1")
    assert again.id == booked.id  # the stored key answers as before

    # A patient's own booking needs no projection row (their session proves who they are).
    stranger = patient()
    mine = await scheduling.book(stranger, kind, second)
    assert mine.patient_id == stranger.subject
    assert await scheduling.pool.fetchval("SELECT count(*) FROM patients") == 1


async def test_the_projection_starts_with_the_patients_of_earlier_appointments(
    database_url: str,
) -> None:
    """Appointments booked before the rule keep their patients bookable (0009 backfills)."""
    earlier, every = migrations_before("0009_patients.sql")
    booked_for = [uuid.uuid4(), uuid.uuid4()]
    conn = await asyncpg.connect(database_url)
    try:
        await db.migrate(conn, earlier)
        provider, kind = uuid.uuid4(), uuid.uuid4()
        await conn.execute(
            "INSERT INTO providers (id, display_name) VALUES ($1, 'Dr. Before')", provider
        )
        await conn.execute(
            """INSERT INTO appointment_types (id, name, duration_minutes, slot_interval_minutes)
               VALUES ($1, 'Old', 30, 30)""",
            kind,
        )
        await conn.execute(
            """INSERT INTO appointments (id, patient_id, provider_id, appointment_type_id,
                   starts_at, ends_at, blocked, status)
               SELECT gen_random_uuid(), p, $2, $3, s, s + interval '30 minutes',
                      tstzrange(s, s + interval '30 minutes'), 'booked'
               FROM unnest($1::uuid[]) WITH ORDINALITY AS b(p, n),
                    LATERAL (SELECT now() + n * interval '1 hour' AS s) AS t""",
            booked_for + booked_for[:1],  # the first patient twice
            provider,
            kind,
        )
        await db.migrate(conn, every)
        known_ids = await conn.fetch("SELECT id FROM patients")
        assert sorted(r["id"] for r in known_ids) == sorted(booked_for)
    finally:
        await conn.close()


def migrations_before(name: str) -> tuple[list[db.Migration], list[db.Migration]]:
    """Scheduling's migrations before `name` (with the runtime's), and all of them."""
    every = db.runtime_migrations() + db.load_migrations(
        "scheduling", resources.files("services.scheduling") / "migrations"
    )
    cut = next(i for i, m in enumerate(every) if m.component == "scheduling" and m.name == name)
    return every[:cut], every


async def test_overlaps_booked_before_the_patient_rule_stay_and_new_ones_are_refused(
    database_url: str,
) -> None:
    """0010 does not fail an upgrade over a patient's overlapping appointments: it marks them."""
    earlier, every = migrations_before("0010_patient_no_overlap.sql")
    me, provider, kind = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    insert = """INSERT INTO appointments (id, patient_id, provider_id, appointment_type_id,
                    starts_at, ends_at, blocked, status)
                VALUES ($1, $2, $3, $4, $5::timestamptz, $5 + interval '30 minutes',
                        tstzrange($5, $5 + interval '30 minutes'), 'booked')"""
    at = datetime(2030, 1, 7, 10, tzinfo=UTC)
    conn = await asyncpg.connect(database_url)
    try:
        await db.migrate(conn, earlier)
        await conn.execute("INSERT INTO providers (id, display_name) VALUES ($1, 'A')", provider)
        other = await conn.fetchval(
            "INSERT INTO providers (id, display_name) VALUES (gen_random_uuid(), 'B') RETURNING id"
        )
        await conn.execute(
            """INSERT INTO appointment_types (id, name, duration_minutes, slot_interval_minutes)
               VALUES ($1, 'Old', 30, 30)""",
            kind,
        )
        clash = [uuid.uuid4(), uuid.uuid4()]
        await conn.execute(insert, clash[0], me, provider, kind, at)
        await conn.execute(insert, clash[1], me, other, kind, at + timedelta(minutes=15))
        await conn.execute(insert, uuid.uuid4(), me, provider, kind, at + timedelta(hours=2))
        await db.migrate(conn, every)
        marked = await conn.fetch("SELECT id FROM appointments WHERE overlap_allowed")
        assert sorted(r["id"] for r in marked) == sorted(clash)
        with pytest.raises(asyncpg.ExclusionViolationError) as refused:
            await conn.execute(insert, uuid.uuid4(), me, other, kind, at + timedelta(hours=2))
        assert refused.value.constraint_name == "appointments_patient_no_overlap"
    finally:
        await conn.close()
