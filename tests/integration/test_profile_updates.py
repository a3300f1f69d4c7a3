"""Profile updates over real gRPC against real PostgreSQL: the patient proposes, staff decide."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import grpc
import pytest
from google.protobuf.message import Message

from portal.events.v1 import identity_pb2 as events
from portal.identity.v1 import identity_pb2 as pb
from services.identity import profile_updates, refusals
from services.runtime.errors import field_errors, precondition_kind, precondition_text
from services.runtime.principal import Principal
from tests.integration import test_identity
from tests.integration.test_identity import FRONT_DESK, GATEWAY, Identity

# The identity service fixture (real server, real database) of the identity tests.
identity = test_identity.identity


def patient(patient_id: str) -> Principal:
    return Principal(kind="patient", subject=patient_id, realm="onsite", session_id="s")


async def propose(identity: Identity, patient_id: str, **values: str) -> pb.ProfileUpdate:
    return await identity.stub.ProposeProfileUpdate(
        pb.ProposeProfileUpdateRequest(proposed=pb.ContactDetails(**values)),
        metadata=identity.md(patient(patient_id)),
    )


async def decide(
    identity: Identity, update_id: str, decision: str, note: str = "", who: Principal = FRONT_DESK
) -> pb.ProfileUpdate:
    return await identity.stub.DecideProfileUpdate(
        pb.DecideProfileUpdateRequest(id=update_id, decision=decision, note=note),
        metadata=identity.md(who),
    )


async def record(identity: Identity, patient_id: str) -> pb.Patient:
    return await identity.stub.GetPatient(
        pb.GetPatientRequest(patient_id=patient_id), metadata=identity.md(FRONT_DESK)
    )


async def audited(identity: Identity, action: str) -> list[asyncpg.Record]:
    return await identity.pool.fetch(
        "SELECT patient_id::text, actor_kind, actor_id, detail FROM audit_log WHERE action = $1"
        " ORDER BY id",
        action,
    )


async def outbox(identity: Identity, subject: str) -> list[bytes]:
    rows = await identity.pool.fetch(
        "SELECT payload FROM outbox WHERE subject = $1 ORDER BY created_at", subject
    )
    return [bytes(r["payload"]) for r in rows]


async def test_propose_list_accept_updates_demographics_audited_with_events(
    identity: Identity,
) -> None:
    patient_id = await identity.patient()
    await identity.stub.UpdatePatient(
        pb.UpdatePatientRequest(
            patient_id=patient_id,
            fields=pb.PatientFields(phone="555 0100", email="ada@example.org"),
            update_mask=["phone", "email"],
        ),
        metadata=identity.md(FRONT_DESK),
    )
    # The same e-mail again is no change: only the new phone and address are proposed.
    proposal = await propose(
        identity,
        patient_id,
        phone="  555  0199 ",
        email="ada@example.org",
        address="12 Analytical Way\r\n\r\nLondon",
    )
    assert proposal.status == "pending" and proposal.patient_id == patient_id
    assert proposal.proposed == pb.ContactDetails(
        phone="555 0199", address="12 Analytical Way\nLondon"
    )
    assert not proposal.proposed.HasField("email")

    mine = await identity.stub.ListMyProfileUpdates(
        pb.ListMyProfileUpdatesRequest(), metadata=identity.md(patient(patient_id))
    )
    assert [u.id for u in mine.items] == [proposal.id]

    # Staff see the current values beside the proposed ones.
    listed = await identity.stub.ListProfileUpdates(
        pb.ListProfileUpdatesRequest(status="pending"), metadata=identity.md(FRONT_DESK)
    )
    (item,) = listed.items
    assert item.current == pb.ContactDetails(phone="555 0100", address="")
    assert item.proposed == proposal.proposed
    assert item.patient_name == "Ada Lovelace" and item.chart_number

    # Meanwhile staff change the e-mail on the chart: accepting keeps it, sets only the rest.
    await identity.stub.UpdatePatient(
        pb.UpdatePatientRequest(
            patient_id=patient_id,
            fields=pb.PatientFields(email="countess@example.org"),
            update_mask=["email"],
        ),
        metadata=identity.md(FRONT_DESK),
    )
    decided = await decide(identity, proposal.id, "accept", "Thank you.")
    assert decided.status == "accepted" and decided.decision_note == "Thank you."
    assert decided.HasField("decided_at")
    now = await record(identity, patient_id)
    assert (now.phone, now.address, now.email) == (
        "555 0199",
        "12 Analytical Way\nLondon",
        "countess@example.org",
    )
    # Decided: the list keeps the values the acceptance replaced.
    listed = await identity.stub.ListProfileUpdates(
        pb.ListProfileUpdatesRequest(status="accepted"), metadata=identity.md(FRONT_DESK)
    )
    assert listed.items[0].current == pb.ContactDetails(phone="555 0100", address="")
    assert listed.items[0].decided_by == FRONT_DESK.name

    mine = await identity.stub.ListMyProfileUpdates(
        pb.ListMyProfileUpdatesRequest(), metadata=identity.md(patient(patient_id))
    )
    assert (mine.items[0].status, mine.items[0].decision_note) == ("accepted", "Thank you.")
    assert not mine.items[0].HasField("current") and not mine.items[0].patient_name

    # Every read and write is in the audit log, with the patient and the actor.
    assert [
        (r["patient_id"], r["actor_kind"])
        for r in await audited(identity, "profile_update.propose")
    ] == [(patient_id, "patient")]
    assert len(await audited(identity, "profile_update.read_own")) == 2
    assert [r["patient_id"] for r in await audited(identity, "profile_update.read")] == [
        patient_id,
        patient_id,
    ]
    (accepted,) = await audited(identity, "profile_update.accept")
    assert accepted["actor_id"] == FRONT_DESK.subject
    assert accepted["detail"] == f"update={proposal.id} fields=address,phone"
    updates = await audited(identity, "patient.update")
    assert updates[-1]["detail"] == accepted["detail"]

    # Events carry ids and field names only.
    (raw,) = await outbox(identity, "portal.identity.profile_update.proposed")
    proposed_event = events.ProfileUpdateProposed.FromString(raw)
    assert (proposed_event.profile_update_id, proposed_event.patient_id) == (
        proposal.id,
        patient_id,
    )
    assert list(proposed_event.fields) == ["address", "phone"]
    (raw,) = await outbox(identity, "portal.identity.profile_update.decided")
    decided_event = events.ProfileUpdateDecided.FromString(raw)
    assert (decided_event.status, decided_event.actor_id) == ("accepted", FRONT_DESK.subject)
    payloads = b"".join(await outbox(identity, "portal.identity.profile_update.proposed"))
    assert b"555" not in payloads and b"Analytical" not in payloads


async def test_reject_leaves_demographics_and_deciding_twice_is_refused(
    identity: Identity,
) -> None:
    patient_id = await identity.patient()
    proposal = await propose(identity, patient_id, preferred_contact="mail", phone="555 0123")
    decided = await decide(identity, proposal.id, "reject", "Please call us to confirm.")
    assert decided.status == "rejected"
    now = await record(identity, patient_id)
    assert (now.preferred_contact, now.phone) == ("", "")
    assert len(await audited(identity, "profile_update.reject")) == 1
    assert not [r for r in await audited(identity, "patient.update") if "update=" in r["detail"]]

    for decision in ("accept", "reject"):
        with pytest.raises(grpc.aio.AioRpcError) as twice:
            await decide(identity, proposal.id, decision)
        assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert precondition_kind(twice.value) == "PROFILE_UPDATE_DECIDED"
        assert precondition_text(twice.value) == refusals.profile_update_decided("rejected")
    assert (await record(identity, patient_id)).phone == ""
    assert len(await outbox(identity, "portal.identity.profile_update.decided")) == 1


async def test_two_staff_deciding_at_once_decide_exactly_once(identity: Identity) -> None:
    patient_id = await identity.patient()
    proposal = await propose(identity, patient_id, phone="555 0111")
    results = await asyncio.gather(
        decide(identity, proposal.id, "accept"),
        decide(identity, proposal.id, "reject", who=test_identity.OTHER_DESK),
        return_exceptions=True,
    )
    decided = [r for r in results if isinstance(r, pb.ProfileUpdate)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(decided) == 1 and len(refused) == 1
    assert precondition_kind(refused[0]) == "PROFILE_UPDATE_DECIDED"
    phone = (await record(identity, patient_id)).phone
    assert phone == ("555 0111" if decided[0].status == "accepted" else "")


async def test_a_new_proposal_replaces_the_pending_one(identity: Identity) -> None:
    patient_id = await identity.patient()
    first = await propose(identity, patient_id, phone="555 0001")
    second = await propose(identity, patient_id, phone="555 0002")
    mine = await identity.stub.ListMyProfileUpdates(
        pb.ListMyProfileUpdatesRequest(), metadata=identity.md(patient(patient_id))
    )
    assert [(u.id, u.status) for u in mine.items] == [
        (second.id, "pending"),
        (first.id, "replaced"),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await decide(identity, first.id, "accept")
    assert precondition_text(stale.value) == refusals.profile_update_decided("replaced")
    await decide(identity, second.id, "accept")
    assert (await record(identity, patient_id)).phone == "555 0002"
    (raw,) = (await outbox(identity, "portal.identity.profile_update.proposed"))[1:]
    assert events.ProfileUpdateProposed.FromString(raw).replaced_id == first.id


async def test_proposals_are_validated_like_demographics(identity: Identity) -> None:
    patient_id = await identity.patient()

    async def refused(**values: str) -> dict[str, list[str]]:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await propose(identity, patient_id, **values)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return field_errors(error.value)

    assert await refused(email="not-an-address", phone="12") == {
        "email": ["E-mail address is not valid."],
        "phone": ["Phone number is not valid."],
    }
    assert await refused(preferred_contact="pigeon") == {
        "preferred_contact": [profile_updates.CONTACT_PREFERENCE]
    }
    assert await refused(address="x" * 301) == {
        "address": ["Address must be at most 300 characters."]
    }
    # The text rule every service applies to every request names the message's own paths.
    assert await refused(phone="555\x000100", address="a\x00b") == {
        "proposed.phone": ["Must not contain control characters."],
        "proposed.address": ["Must not contain control characters."],
    }
    assert await refused() == {"proposed": [profile_updates.NOTHING_PROPOSED]}
    assert await refused(phone="", email="") == {"proposed": [profile_updates.NO_CHANGE]}
    assert await identity.pool.fetchval("SELECT count(*) FROM profile_updates") == 0

    # Clearing a value is a change.
    await identity.stub.UpdatePatient(
        pb.UpdatePatientRequest(
            patient_id=patient_id, fields=pb.PatientFields(phone="555 0100"), update_mask=["phone"]
        ),
        metadata=identity.md(FRONT_DESK),
    )
    cleared = await propose(identity, patient_id, phone="")
    assert cleared.proposed.HasField("phone") and cleared.proposed.phone == ""


async def test_patients_only_reach_their_own_proposals(identity: Identity) -> None:
    ada = await identity.patient()
    grace = await identity.patient(first="Grace", last="Hopper")
    proposal = await propose(identity, ada, phone="555 0100")

    # Grace sees none of Ada's; she cannot decide, list for staff or read the queue.
    theirs = await identity.stub.ListMyProfileUpdates(
        pb.ListMyProfileUpdatesRequest(), metadata=identity.md(patient(grace))
    )
    assert list(theirs.items) == []
    calls: list[tuple[Any, Message]] = [
        (
            identity.stub.DecideProfileUpdate,
            pb.DecideProfileUpdateRequest(id=proposal.id, decision="accept"),
        ),
        (identity.stub.ListProfileUpdates, pb.ListProfileUpdatesRequest()),
        (identity.stub.ListWorkQueue, pb.ListWorkQueueRequest()),
    ]
    for call, request in calls:
        for principal in (patient(ada), patient(grace), GATEWAY):
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await call(request, metadata=identity.md(principal))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # Staff cannot propose on a patient's behalf, nor can the gateway itself.
    for principal in (FRONT_DESK, GATEWAY):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await identity.stub.ProposeProfileUpdate(
                pb.ProposeProfileUpdateRequest(proposed=pb.ContactDetails(phone="555 0199")),
                metadata=identity.md(principal),
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await record(identity, ada)).phone == ""


async def test_work_queue_lists_profile_updates_with_filters(identity: Identity) -> None:
    ada = await identity.patient()
    grace = await identity.patient(first="Grace", last="Hopper")
    first = await propose(identity, ada, phone="555 0100", email="ada@example.org")
    await propose(identity, grace, address="1 Navy Yard")
    await decide(identity, first.id, "reject")

    async def queue(
        kind: str = "", status: str = "", count_only: bool = False
    ) -> pb.ListWorkQueueResponse:
        return await identity.stub.ListWorkQueue(
            pb.ListWorkQueueRequest(kind=kind, status=status, count_only=count_only),
            metadata=identity.md(FRONT_DESK),
        )

    everything = await queue()
    assert everything.total == 2
    assert [(i.kind, i.patient_id, i.status) for i in everything.items] == [
        ("profile_update", grace, "pending"),
        ("profile_update", ada, "rejected"),
    ]
    assert everything.items[1].summary == "Ada Lovelace asks to change: phone, e-mail"
    assert "555" not in everything.items[1].summary
    pending = await queue(kind="profile_update", status="pending")
    assert [i.patient_id for i in pending.items] == [grace]
    # Another service's kinds and statuses select nothing here (the gateway sends them all).
    assert (await queue(kind="refill")).total == 0
    assert (await queue(status="requested")).total == 0
    counted = await queue(status="pending", count_only=True)
    assert (counted.total, list(counted.items)) == (1, [])
    assert sorted(r["patient_id"] for r in await audited(identity, "work_queue.read")) == sorted(
        [ada, grace, grace]
    )
