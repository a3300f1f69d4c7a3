"""The identity service over real gRPC against real PostgreSQL (in this process)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import pytest

from portal.identity.v1 import identity_pb2 as pb
from portal.identity.v1 import identity_pb2_grpc as pb_grpc
from services.identity import refusals
from services.runtime.errors import (
    detail_of,
    field_errors,
    precondition_kind,
    precondition_text,
)
from services.runtime.principal import Principal, PrincipalSigner
from services.runtime.principal_keys import SigningKey, load_signing_key
from services.runtime.principal_keys import generate as generate_keys
from tests.conftest import principal_signer
from tests.integration.identity_server import identity_server, password_change_principal

FRONT_DESK = Principal(
    kind="staff", subject="11111111-1111-1111-1111-111111111111", role="front_desk", name="desk"
)
OTHER_DESK = Principal(
    kind="staff", subject="22222222-2222-2222-2222-222222222222", role="front_desk", name="desk2"
)
GATEWAY = Principal(kind="service", subject="gateway", source="203.0.113.9")


@dataclass
class Identity:
    stub: pb_grpc.IdentityServiceAsyncStub
    codec: PrincipalSigner
    pool: asyncpg.Pool
    channel: grpc.aio.Channel

    def md(self, principal: Principal) -> tuple[tuple[str, str], ...]:
        return self.codec.metadata(principal)

    async def patient(self, first: str = "Ada", last: str = "Lovelace", allow: bool = True) -> str:
        reply = await self.stub.RegisterPatient(
            pb.RegisterPatientRequest(
                fields=pb.PatientFields(
                    first_name=first, last_name=last, date_of_birth="1985-12-10", sex="female"
                ),
                confirm_duplicate=True,
            ),
            metadata=self.md(FRONT_DESK),
        )
        if allow:
            await self.stub.UpdatePatient(
                pb.UpdatePatientRequest(
                    patient_id=reply.patient.id,
                    allow_patient_portal=True,
                    update_mask=["allow_patient_portal"],
                ),
                metadata=self.md(FRONT_DESK),
            )
        return str(reply.patient.id)


@pytest.fixture
async def identity(database_url: str) -> AsyncIterator[Identity]:
    async with identity_server(database_url) as (pool, address):
        channel = grpc.aio.insecure_channel(address)
        yield Identity(pb_grpc.IdentityServiceStub(channel), principal_signer(), pool, channel)
        await channel.close(grace=None)


async def test_two_staff_pressing_create_at_once_make_exactly_one_account(
    identity: Identity,
) -> None:
    patient_id = await identity.patient()
    request = pb.IssueCredentialsRequest(patient_id=patient_id, realm=pb.REALM_ONSITE)
    results = await asyncio.gather(
        identity.stub.IssueCredentials(request, metadata=identity.md(FRONT_DESK)),
        identity.stub.IssueCredentials(request, metadata=identity.md(OTHER_DESK)),
        return_exceptions=True,
    )
    issued = [r for r in results if isinstance(r, pb.IssuedCredentials)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(issued) == 1 and len(refused) == 1
    assert refused[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    assert precondition_kind(refused[0]) == "ACCOUNT_EXISTS"
    count = await identity.pool.fetchval(
        "SELECT count(*) FROM portal_accounts WHERE patient_id = $1::uuid", patient_id
    )
    assert count == 1
    # Exactly one credentials.issued event waits in the outbox.
    events = await identity.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE subject = 'portal.identity.credentials.issued'"
    )
    assert events == 1


async def test_credentials_need_portal_access_and_the_password_is_never_stored(
    identity: Identity,
) -> None:
    patient_id = await identity.patient(allow=False)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.IssueCredentials(
            pb.IssueCredentialsRequest(patient_id=patient_id, realm=pb.REALM_OFFSITE),
            metadata=identity.md(FRONT_DESK),
        )
    assert precondition_kind(refused.value) == "PORTAL_NOT_ALLOWED"

    patient_id = await identity.patient(first="Grace", last="Hopper")
    issued = await identity.stub.IssueCredentials(
        pb.IssueCredentialsRequest(patient_id=patient_id, realm=pb.REALM_OFFSITE),
        metadata=identity.md(FRONT_DESK),
    )
    assert issued.username.startswith("ghopper") and len(issued.password) >= 12
    stored = await identity.pool.fetchval(
        "SELECT password_hash FROM portal_accounts WHERE patient_id = $1::uuid", patient_id
    )
    assert stored.startswith("$argon2id$") and issued.password not in stored
    logged = await identity.pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE detail LIKE '%' || $1 || '%'", issued.password
    )
    assert logged == 0


async def test_staff_typed_password_is_checked_against_the_policy(identity: Identity) -> None:
    patient_id = await identity.patient()
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.IssueCredentials(
            pb.IssueCredentialsRequest(
                patient_id=patient_id, realm=pb.REALM_ONSITE, password="short"
            ),
            metadata=identity.md(FRONT_DESK),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "password" in field_errors(refused.value)
    assert await identity.pool.fetchval("SELECT count(*) FROM portal_accounts") == 0


async def test_sign_in_realms_lockout_and_generic_failures(identity: Identity) -> None:
    patient_id = await identity.patient()
    issued = await identity.stub.IssueCredentials(
        pb.IssueCredentialsRequest(patient_id=patient_id, realm=pb.REALM_ONSITE),
        metadata=identity.md(FRONT_DESK),
    )

    async def sign_in(
        realm: pb.Realm.ValueType, username: str, password: str
    ) -> grpc.StatusCode | pb.SessionGrant:
        try:
            return await identity.stub.PatientSignIn(
                pb.PatientSignInRequest(realm=realm, username=username, password=password),
                metadata=identity.md(GATEWAY),
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.details() == "Invalid username or password."
            return exc.code()

    grant = await sign_in(pb.REALM_ONSITE, issued.username, issued.password)
    assert isinstance(grant, pb.SessionGrant) and grant.session.must_change_password
    # The other realm does not know these credentials; unknown users fail alike.
    assert (
        await sign_in(pb.REALM_OFFSITE, issued.username, issued.password)
        == grpc.StatusCode.UNAUTHENTICATED
    )
    assert (
        await sign_in(pb.REALM_ONSITE, "nobody1234", "whatever-password")
        == grpc.StatusCode.UNAUTHENTICATED
    )
    for _ in range(5):
        assert (
            await sign_in(pb.REALM_ONSITE, issued.username, "wrong-password-1")
            == grpc.StatusCode.UNAUTHENTICATED
        )
    # Locked: even the right password fails, with the same message.
    assert (
        await sign_in(pb.REALM_ONSITE, issued.username, issued.password)
        == grpc.StatusCode.UNAUTHENTICATED
    )
    locked = await identity.pool.fetchval(
        "SELECT locked_until > now() + interval '50 seconds' FROM portal_accounts"
    )
    assert locked is True
    subjects = [r["subject"] for r in await identity.pool.fetch("SELECT subject FROM outbox")]
    assert "portal.identity.login.locked" in subjects


async def test_services_and_patients_cannot_call_staff_methods(identity: Identity) -> None:
    patient = Principal(
        kind="patient", subject="33333333-3333-3333-3333-333333333333", realm="onsite"
    )
    for principal in (patient, GATEWAY):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await identity.stub.SearchPatients(
                pb.SearchPatientsRequest(query="a"), metadata=identity.md(principal)
            )
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await identity.stub.SearchPatients(pb.SearchPatientsRequest(query="a"))
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    other_key: SigningKey = load_signing_key(generate_keys()[0])
    forged = PrincipalSigner(other_key).metadata(FRONT_DESK)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await identity.stub.SearchPatients(pb.SearchPatientsRequest(query="a"), metadata=forged)
    assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_search_is_typo_tolerant_and_finds_by_birth_date(identity: Identity) -> None:
    await identity.patient(first="Margaret", last="Hamilton", allow=False)
    await identity.patient(first="Katherine", last="Johnson", allow=False)

    async def search(q: str) -> list[str]:
        reply = await identity.stub.SearchPatients(
            pb.SearchPatientsRequest(query=q), metadata=identity.md(FRONT_DESK)
        )
        return [f"{p.first_name} {p.last_name}" for p in reply.items]

    assert (await search("Hamiltn"))[0] == "Margaret Hamilton"
    assert (await search("katherine jonson"))[0] == "Katherine Johnson"
    assert set(await search("1985-12-10")) == {"Margaret Hamilton", "Katherine Johnson"}
    assert set(await search("12/10/1985")) == {"Margaret Hamilton", "Katherine Johnson"}


async def audit_rows(identity: Identity, action: str) -> list[asyncpg.Record]:
    return await identity.pool.fetch(
        "SELECT patient_id::text, actor_id, outcome, detail FROM audit_log WHERE action = $1"
        " ORDER BY id",
        action,
    )


async def test_a_likely_duplicate_is_refused_with_the_patients_it_matches(
    identity: Identity,
) -> None:
    first = await identity.patient(first="Ada", last="Lovelace", allow=False)
    await identity.patient(first="Ada", last="Byron", allow=False)  # another name: no match
    fields = pb.PatientFields(
        first_name=" ada ", last_name="LOVELACE", date_of_birth="12/10/1985", sex="female"
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.RegisterPatient(
            pb.RegisterPatientRequest(fields=fields), metadata=identity.md(FRONT_DESK)
        )
    error = refused.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert precondition_kind(error) == "DUPLICATE_PATIENT"
    assert precondition_text(error) == refusals.DUPLICATE_PATIENT == error.details()
    found = detail_of(error, pb.PossibleDuplicates)
    assert found is not None
    [match] = found.patients
    assert (match.id, match.first_name, match.last_name) == (first, "Ada", "Lovelace")
    assert match.date_of_birth == "1985-12-10" and match.chart_number
    # Showing the match is a disclosure: the matched patient's audit trail records it.
    disclosed = [r for r in await audit_rows(identity, "patient.register") if r[2] != "ok"]
    assert [(r[0], r[1], r[2]) for r in disclosed] == [
        (first, FRONT_DESK.subject, "possible_duplicate")
    ]
    # Nothing was registered; confirming registers the second patient.
    assert await identity.pool.fetchval("SELECT count(*) FROM patients") == 2
    reply = await identity.stub.RegisterPatient(
        pb.RegisterPatientRequest(fields=fields, confirm_duplicate=True),
        metadata=identity.md(FRONT_DESK),
    )
    assert reply.patient.id != first and reply.patient.first_name == "ada"


async def test_each_refusal_carries_its_one_sentence(identity: Identity) -> None:
    async def refusal(call, request) -> tuple[str, str]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(request, metadata=identity.md(FRONT_DESK))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        # The status message and the violation's description are the same sentence.
        assert refused.value.details() == precondition_text(refused.value)
        return precondition_kind(refused.value), precondition_text(refused.value)

    closed = await identity.patient(first="Closed", last="Door", allow=False)
    onsite = pb.IssueCredentialsRequest(patient_id=closed, realm=pb.REALM_ONSITE)
    assert await refusal(identity.stub.IssueCredentials, onsite) == (
        "PORTAL_NOT_ALLOWED",
        refusals.PORTAL_NOT_ALLOWED,
    )
    patient_id = await identity.patient(first="Open", last="Door")
    await identity.stub.IssueCredentials(
        pb.IssueCredentialsRequest(patient_id=patient_id, realm=pb.REALM_ONSITE),
        metadata=identity.md(FRONT_DESK),
    )
    again = pb.SuggestCredentialsRequest(patient_id=patient_id, realm=pb.REALM_ONSITE)
    assert await refusal(identity.stub.SuggestCredentials, again) == (
        "ACCOUNT_EXISTS",
        "The patient already has onsite portal credentials. Reset them instead of creating "
        "them again.",
    )
    offsite = pb.ResetCredentialsRequest(patient_id=patient_id, realm=pb.REALM_OFFSITE)
    assert await refusal(identity.stub.ResetCredentials, offsite) == (
        "NO_ACCOUNT",
        "The patient has no offsite portal credentials yet. Create them instead.",
    )
    # validate_only: refused the same way, and when possible it changes nothing.
    check = pb.ResetCredentialsRequest(
        patient_id=patient_id, realm=pb.REALM_OFFSITE, validate_only=True
    )
    assert (await refusal(identity.stub.ResetCredentials, check))[0] == "NO_ACCOUNT"
    check.realm = pb.REALM_ONSITE
    checked = await identity.stub.ResetCredentials(check, metadata=identity.md(FRONT_DESK))
    assert checked.username and not checked.password
    assert await audit_rows(identity, "credentials.reset") == []


async def test_letter_downloads_are_audited_for_staff_only(identity: Identity) -> None:
    patient_id = await identity.patient()
    request = pb.RecordLetterDownloadedRequest(patient_id=patient_id, realm=pb.REALM_OFFSITE)
    with pytest.raises(grpc.aio.AioRpcError) as no_account:
        await identity.stub.RecordLetterDownloaded(request, metadata=identity.md(FRONT_DESK))
    assert no_account.value.code() == grpc.StatusCode.NOT_FOUND
    await identity.stub.IssueCredentials(
        pb.IssueCredentialsRequest(patient_id=patient_id, realm=pb.REALM_OFFSITE),
        metadata=identity.md(FRONT_DESK),
    )
    await identity.stub.RecordLetterDownloaded(request, metadata=identity.md(FRONT_DESK))
    rows = await audit_rows(identity, "credentials.letter_downloaded")
    assert [tuple(r) for r in rows] == [(patient_id, FRONT_DESK.subject, "ok", "realm=offsite")]
    patient = Principal(kind="patient", subject=patient_id, realm="offsite")
    for principal in (patient, GATEWAY):
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await identity.stub.RecordLetterDownloaded(request, metadata=identity.md(principal))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_resolve_with_own_profile_reads_and_audits_like_get_my_profile(
    identity: Identity,
) -> None:
    patient_id = await identity.patient()
    issued = await identity.stub.IssueCredentials(
        pb.IssueCredentialsRequest(patient_id=patient_id, realm=pb.REALM_ONSITE),
        metadata=identity.md(FRONT_DESK),
    )
    first = await identity.stub.PatientSignIn(
        pb.PatientSignInRequest(
            realm=pb.REALM_ONSITE, username=issued.username, password=issued.password
        ),
        metadata=identity.md(GATEWAY),
    )

    async def resolve(token: str, with_own_profile: bool = True) -> pb.Session:
        return await identity.stub.ResolveSession(
            pb.ResolveSessionRequest(token=token, touch=True, with_own_profile=with_own_profile),
            metadata=identity.md(GATEWAY),
        )

    async def reads() -> list[tuple[str, str, str]]:
        rows = await identity.pool.fetch(
            """SELECT actor_kind, actor_id, source_address FROM audit_log
               WHERE action = 'patient.read_own' AND patient_id = $1""",
            uuid.UUID(patient_id),
        )
        return [tuple(r) for r in rows]

    # While the password must change, nothing is read (GetMyProfile refuses it too).
    assert not (await resolve(first.token)).HasField("own_profile")
    assert await reads() == []

    pending = password_change_principal(patient_id, first.session.session_id)
    grant = await identity.stub.ChangePassword(
        pb.ChangePasswordRequest(
            current_password=issued.password, new_password="Brand-new-passphrase-42"
        ),
        metadata=identity.md(pending),
    )
    session = await resolve(grant.token)
    assert session.own_profile.id == patient_id and session.own_profile.first_name == "Ada"
    assert [a.realm for a in session.own_profile.accounts] == [pb.REALM_ONSITE]
    # Audited as the patient's own read, from the address the gateway reported.
    assert await reads() == [("patient", patient_id, GATEWAY.source)]
    # Not asked: not read, not audited.
    assert not (await resolve(grant.token, with_own_profile=False)).HasField("own_profile")
    assert len(await reads()) == 1
