"""The practice's set-up in the scheduling service: who may change what (roles.py), a provider
deactivated and reactivated, names unique whatever their case, and the checks on a list."""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.runtime import db
from services.runtime.errors import field_errors, precondition_failure
from tests.integration.test_scheduling import (
    ADMIN,
    DESK,
    EVERY_DAY,
    Scheduling,
    migrations_before,
    outcome,
    scheduling,
)

__all__ = ["scheduling"]  # the fixture

CLINICIAN = replace(DESK, subject="33333333-3333-3333-3333-333333333333", role="clinician")


async def test_only_admins_change_providers_and_types_front_desk_keeps_the_hours(
    scheduling: Scheduling,
) -> None:
    provider = await scheduling.provider()
    kind = await scheduling.kind([provider])
    stub, denied, one = scheduling.stub, "PERMISSION_DENIED", provider
    for who in (DESK, CLINICIAN):
        md = scheduling.md(who)
        fields = pb.AppointmentTypeFields(name="Other", duration_minutes=30)
        setup: tuple[object, ...] = (
            stub.CreateProvider(pb.CreateProviderRequest(display_name="Dr. New"), metadata=md),
            stub.RenameProvider(
                pb.RenameProviderRequest(provider_id=provider, display_name="Dr. X"), metadata=md
            ),
            stub.DeactivateProvider(pb.DeactivateProviderRequest(provider_id=one), metadata=md),
            stub.ReactivateProvider(pb.ReactivateProviderRequest(provider_id=one), metadata=md),
            stub.CreateAppointmentType(pb.CreateAppointmentTypeRequest(fields=fields), metadata=md),
            stub.UpdateAppointmentType(
                pb.UpdateAppointmentTypeRequest(appointment_type_id=kind.id, fields=fields),
                metadata=md,
            ),
        )
        for pending in setup:
            assert await outcome(pending) == denied
    start, end = Timestamp(seconds=4_000_000_000), Timestamp(seconds=4_000_003_600)
    clinician = scheduling.md(CLINICIAN)
    hours: tuple[object, ...] = (
        stub.ReplaceWorkingHours(
            pb.ReplaceWorkingHoursRequest(provider_id=provider, weekly=EVERY_DAY),
            metadata=clinician,
        ),
        stub.SetDateOverride(
            pb.SetDateOverrideRequest(provider_id=provider, date="2096-01-02"), metadata=clinician
        ),
        stub.RemoveDateOverride(
            pb.RemoveDateOverrideRequest(provider_id=provider, date="2096-01-02"),
            metadata=clinician,
        ),
        stub.AddTimeOff(
            pb.AddTimeOffRequest(provider_id=provider, start=start, end=end), metadata=clinician
        ),
    )
    for pending in hours:
        assert await outcome(pending) == denied
    # Front desk keeps the calendar: hours, overrides and time off.
    desk = scheduling.md(DESK)
    await stub.ReplaceWorkingHours(
        pb.ReplaceWorkingHoursRequest(provider_id=provider, weekly=EVERY_DAY), metadata=desk
    )
    await stub.SetDateOverride(
        pb.SetDateOverrideRequest(provider_id=provider, date="2096-01-02"), metadata=desk
    )
    off = await stub.AddTimeOff(
        pb.AddTimeOffRequest(provider_id=provider, start=start, end=end), metadata=desk
    )
    assert (
        await outcome(
            stub.RemoveTimeOff(pb.RemoveTimeOffRequest(time_off_id=off.id), metadata=clinician)
        )
        == denied
    )
    await stub.RemoveTimeOff(pb.RemoveTimeOffRequest(time_off_id=off.id), metadata=desk)
    # Every staff role reads the set-up.
    for who in (DESK, CLINICIAN):
        md = scheduling.md(who)
        listed = await stub.ListProviders(pb.ListProvidersRequest(), metadata=md)
        assert [p.id for p in listed.items] == [provider]
        await stub.GetWorkingHours(pb.GetWorkingHoursRequest(provider_id=provider), metadata=md)
        await stub.ListTimeOff(pb.ListTimeOffRequest(provider_id=provider), metadata=md)
        types = await stub.ListAppointmentTypes(pb.ListAppointmentTypesRequest(), metadata=md)
        assert [t.id for t in types.items] == [kind.id]


async def test_a_deactivated_provider_is_reactivated_and_offers_times_again(
    scheduling: Scheduling,
) -> None:
    provider = await scheduling.provider()
    kind = await scheduling.kind([provider])
    md = scheduling.md(ADMIN)
    off = await scheduling.stub.DeactivateProvider(
        pb.DeactivateProviderRequest(provider_id=provider), metadata=md
    )
    assert not off.active and await scheduling.slots(kind) == []
    on = await scheduling.stub.ReactivateProvider(
        pb.ReactivateProviderRequest(provider_id=provider), metadata=md
    )
    assert on.active and on.display_name == off.display_name
    assert await scheduling.slots(kind, limit=1)
    again = await scheduling.stub.ReactivateProvider(
        pb.ReactivateProviderRequest(provider_id=provider), metadata=md
    )
    assert again.active  # already active: nothing changes
    missing = scheduling.stub.ReactivateProvider(
        pb.ReactivateProviderRequest(provider_id="00000000-0000-0000-0000-000000000000"),
        metadata=md,
    )
    assert await outcome(missing) == "NOT_FOUND"


async def test_active_provider_names_are_unique_whatever_their_case(
    scheduling: Scheduling,
) -> None:
    md = scheduling.md(ADMIN)
    first = await scheduling.provider("Dr. Amara Okafor")
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await scheduling.stub.CreateProvider(
            pb.CreateProviderRequest(display_name="dr. amara OKAFOR"), metadata=md
        )
    kind, text = precondition_failure(taken.value)
    assert kind == "NAME_TAKEN" and "already called dr. amara OKAFOR" in text
    other = await scheduling.provider("Dr. Jonas Lindqvist")
    rename = scheduling.stub.RenameProvider(
        pb.RenameProviderRequest(provider_id=other, display_name="DR. AMARA OKAFOR"), metadata=md
    )
    assert await outcome(rename) == "NAME_TAKEN"
    # A deactivated provider's name may be taken by a successor; reactivating them then is
    # refused until one of them is renamed.
    await scheduling.stub.DeactivateProvider(
        pb.DeactivateProviderRequest(provider_id=first), metadata=md
    )
    successor = await scheduling.provider("Dr. Amara Okafor")
    back = scheduling.stub.ReactivateProvider(
        pb.ReactivateProviderRequest(provider_id=first), metadata=md
    )
    assert await outcome(back) == "NAME_TAKEN"
    await scheduling.stub.RenameProvider(
        pb.RenameProviderRequest(provider_id=successor, display_name="Dr. Amara Okafor (new)"),
        metadata=md,
    )
    back = scheduling.stub.ReactivateProvider(
        pb.ReactivateProviderRequest(provider_id=first), metadata=md
    )
    assert (await back).active


async def test_appointment_type_names_are_unique_whatever_their_case(
    scheduling: Scheduling,
) -> None:
    provider = await scheduling.provider()
    fields = pb.AppointmentTypeFields(name="Follow-up", duration_minutes=20)
    await scheduling.stub.CreateAppointmentType(
        pb.CreateAppointmentTypeRequest(fields=fields), metadata=scheduling.md(ADMIN)
    )
    fields.name = "follow-UP"
    fields.provider_ids.append(provider)
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await scheduling.stub.CreateAppointmentType(
            pb.CreateAppointmentTypeRequest(fields=fields), metadata=scheduling.md(ADMIN)
        )
    assert field_errors(taken.value) == {
        "name": ["An appointment type with this name already exists."]
    }


async def test_a_list_whose_end_is_not_after_its_start_names_to(scheduling: Scheduling) -> None:
    request = pb.ListAppointmentsRequest(to=Timestamp(seconds=1_790_000_000))
    getattr(request, "from").CopyFrom(Timestamp(seconds=1_820_000_000))
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await scheduling.stub.ListAppointments(request, metadata=scheduling.md(DESK))
    assert field_errors(bad.value) == {"to": ["Must be after from."]}
    assert bad.value.details() == "Some fields are not valid."


async def test_unknown_ids_and_refused_roles_read_as_sentences(scheduling: Scheduling) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await scheduling.stub.GetWorkingHours(
            pb.GetWorkingHoursRequest(provider_id="00000000-0000-0000-0000-000000000000"),
            metadata=scheduling.md(DESK),
        )
    assert missing.value.details() == "No such provider."
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await scheduling.stub.CreateProvider(
            pb.CreateProviderRequest(display_name="Dr. New"), metadata=scheduling.md(DESK)
        )
    assert denied.value.details() == "Your role does not allow this."


async def test_the_upgrade_renames_names_that_differ_only_in_case(database_url: str) -> None:
    """Migration 0011 on a database holding "Follow-up" and "follow-up" (and two active
    "Dr. Rivera"s): the oldest keeps its name, the others get a number; nothing fails."""
    before, every = migrations_before("0011_unique_names.sql")
    conn = await asyncpg.connect(database_url)
    try:
        await db.migrate(conn, before)
        await conn.execute(
            """INSERT INTO appointment_types
                   (id, name, duration_minutes, slot_interval_minutes, created_at) VALUES
                   (gen_random_uuid(), 'Follow-up', 20, 20, now() - interval '3 days'),
                   (gen_random_uuid(), 'follow-up', 20, 20, now() - interval '2 days'),
                   (gen_random_uuid(), 'FOLLOW-UP', 20, 20, now() - interval '1 day'),
                   (gen_random_uuid(), 'follow-up (2)', 20, 20, now())"""
        )
        await conn.execute(
            """INSERT INTO providers (id, display_name, active, created_at) VALUES
                   (gen_random_uuid(), 'Dr. Rivera', true, now() - interval '1 day'),
                   (gen_random_uuid(), 'dr. rivera', true, now()),
                   (gen_random_uuid(), 'DR. RIVERA', false, now())"""
        )
        await db.migrate(conn, every)
        types = await conn.fetch("SELECT name FROM appointment_types ORDER BY created_at")
        # "follow-up (2)" was taken already, so the next free numbers are 3 and 4.
        assert [t["name"] for t in types] == [
            "Follow-up",
            "follow-up (3)",
            "FOLLOW-UP (4)",
            "follow-up (2)",
        ]
        providers = await conn.fetch("SELECT display_name, active FROM providers")
        assert sorted((p["display_name"], p["active"]) for p in providers) == [
            ("DR. RIVERA", False),
            ("Dr. Rivera", True),
            ("dr. rivera (2)", True),
        ]
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                """INSERT INTO appointment_types (id, name, duration_minutes, slot_interval_minutes)
                   VALUES (gen_random_uuid(), 'FOLLOW-up', 20, 20)"""
            )
    finally:
        await conn.close()
