"""GetPatientSummaries over real gRPC against real PostgreSQL: names for many ids in one call,
staff only, audited once per patient shown, at most 200 ids."""

from __future__ import annotations

import uuid

import grpc
import pytest

from portal.identity.v1 import identity_pb2 as pb
from services.runtime.errors import field_errors
from services.runtime.principal import Principal
from tests.integration import test_identity
from tests.integration.test_identity import FRONT_DESK, Identity

identity = test_identity.identity


async def summaries(
    identity: Identity, ids: list[str], who: Principal = FRONT_DESK
) -> pb.GetPatientSummariesResponse:
    return await identity.stub.GetPatientSummaries(
        pb.GetPatientSummariesRequest(patient_ids=ids), metadata=identity.md(who)
    )


async def test_names_in_order_unknown_left_out_each_read_audited(identity: Identity) -> None:
    ada = await identity.patient("Ada", "Lovelace")
    grace = await identity.patient("Grace", "Hopper")
    unknown = str(uuid.uuid4())
    reply = await summaries(identity, [grace, unknown, ada, grace])
    assert [(p.id, p.first_name, p.last_name) for p in reply.items] == [
        (grace, "Grace", "Hopper"),
        (ada, "Ada", "Lovelace"),
    ]
    rows = await identity.pool.fetch(
        "SELECT patient_id::text AS patient_id, actor_id FROM audit_log"
        " WHERE action = 'patient.read' ORDER BY id"
    )
    assert [(r["patient_id"], r["actor_id"]) for r in rows] == [
        (grace, FRONT_DESK.subject),
        (ada, FRONT_DESK.subject),
    ]


async def test_at_most_200_ids_and_at_least_one(identity: Identity) -> None:
    ada = await identity.patient()
    many = [ada] + [str(uuid.uuid4()) for _ in range(199)]
    assert [p.id for p in (await summaries(identity, many)).items] == [ada]
    for ids in ([], [*many, str(uuid.uuid4())]):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await summaries(identity, ids)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "patient_ids" in field_errors(refused.value)


async def test_malformed_id_is_invalid(identity: Identity) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await summaries(identity, ["not-an-id"])
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_patients_may_not_use_it(identity: Identity) -> None:
    ada = await identity.patient()
    patient = Principal(kind="patient", subject=ada, realm="onsite", session_id="s")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await summaries(identity, [ada], patient)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    count = await identity.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'patient.read'"
    )
    assert count == 0
