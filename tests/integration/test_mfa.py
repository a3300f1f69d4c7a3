"""Two-factor sign-in through identity's gRPC service against real PostgreSQL."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest

from portal.identity.v1 import identity_pb2 as pb
from services.identity import mfa, sessions, totp
from services.runtime.principal import Principal
from tests.integration.identity_server import password_change_principal
from tests.integration.test_identity import FRONT_DESK, GATEWAY, Identity, identity

__all__ = ["identity"]  # the fixture, shared with test_identity

ADMIN = Principal(kind="staff", subject=str(uuid.uuid4()), role="admin", name="admin")
PASSWORD = "correct horse battery staple 42"


def code(secret: str, shift: int = 0) -> str:
    return totp.code_at(secret, time.time() + shift * totp.STEP_SECONDS)


def wrong_code(secret: str) -> str:
    """A code of none of the steps the server accepts now."""
    taken = {code(secret, shift) for shift in (-2, -1, 0, 1, 2)}
    return next(c for c in (f"{n:06d}" for n in range(20)) if c not in taken)


async def staff_user(identity: Identity) -> Principal:
    username = f"nurse{uuid.uuid4().hex[:6]}"
    user = await identity.stub.CreateStaffUser(
        pb.CreateStaffUserRequest(
            username=username, display_name="Nurse", role=pb.STAFF_ROLE_CLINICIAN, password=PASSWORD
        ),
        metadata=identity.md(ADMIN),
    )
    return Principal(kind="staff", subject=user.id, role="clinician", name=username)


async def enrol(identity: Identity, who: Principal) -> tuple[str, list[str]]:
    started = await identity.stub.StartTotpEnrolment(
        pb.StartTotpEnrolmentRequest(), metadata=identity.md(who)
    )
    assert started.otpauth_uri.startswith("otpauth://totp/")
    confirmed = await identity.stub.ConfirmTotp(
        pb.ConfirmTotpRequest(code=code(started.secret, -1)), metadata=identity.md(who)
    )
    assert len(set(confirmed.codes)) == mfa.RECOVERY_CODES
    return started.secret, list(confirmed.codes)


async def sign_in(identity: Identity, who: Principal) -> pb.SessionGrant:
    grant: pb.SessionGrant = await identity.stub.StaffSignIn(
        pb.SignInRequest(username=who.name, password=PASSWORD), metadata=identity.md(GATEWAY)
    )
    return grant


async def second_step(
    identity: Identity,
    challenge: str,
    value: str,
    kind: pb.SessionKind.ValueType = pb.SESSION_KIND_STAFF,
) -> pb.SessionGrant:
    grant: pb.SessionGrant = await identity.stub.CompleteMfaSignIn(
        pb.CompleteMfaSignInRequest(
            challenge=challenge,
            code=value,
            kind=kind,
            realm=pb.REALM_ONSITE,
        ),
        metadata=identity.md(GATEWAY),
    )
    return grant


async def test_enrolled_staff_sign_in_takes_two_steps_and_a_code_works_once(
    identity: Identity,
) -> None:
    who = await staff_user(identity)
    assert (await sign_in(identity, who)).token  # not enrolled: one step
    secret, _ = await enrol(identity, who)

    first = await sign_in(identity, who)
    assert first.token == "" and first.mfa_challenge
    grant = await second_step(identity, first.mfa_challenge, code(secret))
    assert grant.token and grant.session.staff_user_id == who.subject

    again = await sign_in(identity, who)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await second_step(identity, again.mfa_challenge, code(secret))  # the same step again
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # The challenge survives a wrong code (within its attempts): the next step's code works.
    assert (await second_step(identity, again.mfa_challenge, code(secret, 1))).token
    # A used challenge is gone.
    with pytest.raises(grpc.aio.AioRpcError):
        await second_step(identity, again.mfa_challenge, code(secret, 1))


async def test_recovery_codes_are_single_use(identity: Identity) -> None:
    who = await staff_user(identity)
    _, recovery = await enrol(identity, who)
    first = await sign_in(identity, who)
    assert (await second_step(identity, first.mfa_challenge, recovery[0].upper())).token
    second = await sign_in(identity, who)
    with pytest.raises(grpc.aio.AioRpcError):
        await second_step(identity, second.mfa_challenge, recovery[0])
    status = await identity.stub.GetMfaStatus(pb.GetMfaStatusRequest(), metadata=identity.md(who))
    assert status.enrolled and status.recovery_codes_left == mfa.RECOVERY_CODES - 1


async def test_wrong_codes_are_rate_limited(identity: Identity) -> None:
    who = await staff_user(identity)
    secret, _ = await enrol(identity, who)
    for _ in range(mfa.MAX_FAILURES):
        challenge = (await sign_in(identity, who)).mfa_challenge
        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await second_step(identity, challenge, wrong_code(secret))
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    challenge = (await sign_in(identity, who)).mfa_challenge
    with pytest.raises(grpc.aio.AioRpcError) as limited:
        await second_step(identity, challenge, code(secret))  # even the right code
    assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_challenge_allows_few_attempts(identity: Identity) -> None:
    who = await staff_user(identity)
    secret, _ = await enrol(identity, who)
    challenge = (await sign_in(identity, who)).mfa_challenge
    await identity.pool.execute("UPDATE mfa_challenges SET attempts = $1", mfa.CHALLENGE_ATTEMPTS)
    with pytest.raises(grpc.aio.AioRpcError):
        await second_step(identity, challenge, code(secret))


async def test_remove_needs_a_code_and_turns_two_steps_off(identity: Identity) -> None:
    who = await staff_user(identity)
    secret, _ = await enrol(identity, who)
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await identity.stub.RemoveTotp(pb.RemoveTotpRequest(code="abc"), metadata=identity.md(who))
    assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await identity.stub.RemoveTotp(
        pb.RemoveTotpRequest(code=code(secret)), metadata=identity.md(who)
    )
    assert (await sign_in(identity, who)).token


async def test_staff_reset_a_patients_factor_audited(identity: Identity) -> None:
    patient_id = await identity.patient()
    issued = await identity.stub.IssueCredentials(
        pb.IssueCredentialsRequest(patient_id=patient_id, realm=pb.REALM_ONSITE),
        metadata=identity.md(FRONT_DESK),
    )
    patient = Principal(kind="patient", subject=patient_id, realm="onsite")
    secret, _ = await enrol(identity, patient)
    first = await identity.stub.PatientSignIn(
        pb.PatientSignInRequest(
            realm=pb.REALM_ONSITE, username=issued.username, password=issued.password
        ),
        metadata=identity.md(GATEWAY),
    )
    assert first.token == "" and first.mfa_challenge
    with pytest.raises(grpc.aio.AioRpcError):  # a patient's challenge at the staff step
        await second_step(identity, first.mfa_challenge, code(secret))
    grant = await second_step(identity, first.mfa_challenge, code(secret), pb.SESSION_KIND_PATIENT)
    assert grant.session.patient_id == patient_id and grant.session.must_change_password

    await identity.stub.ResetPatientMfa(
        pb.ResetPatientMfaRequest(patient_id=patient_id, realm=pb.REALM_ONSITE),
        metadata=identity.md(FRONT_DESK),
    )
    again = await identity.stub.PatientSignIn(
        pb.PatientSignInRequest(
            realm=pb.REALM_ONSITE, username=issued.username, password=issued.password
        ),
        metadata=identity.md(GATEWAY),
    )
    assert again.token
    audited = await identity.pool.fetchval(
        """SELECT count(*) FROM audit_log WHERE action = 'mfa.reset'
            AND patient_id = $1::uuid AND actor_id = $2""",
        patient_id,
        FRONT_DESK.subject,
    )
    assert audited == 1


async def test_patients_cannot_reset_factors(identity: Identity) -> None:
    patient_id = await identity.patient()
    patient = Principal(kind="patient", subject=patient_id, realm="onsite")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.ResetPatientMfa(
            pb.ResetPatientMfaRequest(patient_id=patient_id, realm=pb.REALM_ONSITE),
            metadata=identity.md(patient),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def complete(
    identity: Identity, challenge: str, value: str, device: str = "", *, remember: bool
) -> pb.SessionGrant:
    """The staff second step as the sign-in page sends it (remember) or the API (not)."""
    grant: pb.SessionGrant = await identity.stub.CompleteMfaSignIn(
        pb.CompleteMfaSignInRequest(
            challenge=challenge,
            code=value,
            kind=pb.SESSION_KIND_STAFF,
            device_token=device,
            remember_device=remember,
            user_agent="PortalTest/2.0",
        ),
        metadata=identity.md(GATEWAY),
    )
    return grant


async def test_a_second_factor_sign_in_remembers_the_device_once_both_steps_passed(
    identity: Identity,
) -> None:
    who = await staff_user(identity)
    secret, recovery = await enrol(identity, who)

    async def first_step(device: str = "") -> pb.SessionGrant:
        grant: pb.SessionGrant = await identity.stub.StaffSignIn(
            pb.SignInRequest(
                username=who.name, password=PASSWORD, device_token=device, remember_device=True
            ),
            metadata=identity.md(GATEWAY),
        )
        return grant

    first = await first_step()
    assert first.mfa_challenge and not first.device_token  # the password alone earns none
    grant = await complete(identity, first.mfa_challenge, code(secret), remember=True)
    assert grant.token and grant.device_token
    device = grant.device_token

    # The cookie is this user's device: presented again, it spends its own budget and is kept.
    for _ in range(3):  # wrong guesses elsewhere lock the shared budget, not this device
        with pytest.raises(grpc.aio.AioRpcError):
            await identity.stub.StaffSignIn(
                pb.SignInRequest(username=who.name, password="wrong"),
                metadata=identity.md(GATEWAY),
            )
    again = await first_step(device)
    kept = await complete(identity, again.mfa_challenge, code(secret, 1), device, remember=True)
    assert kept.token and kept.device_token == ""
    shared = await identity.pool.fetchval(
        "SELECT failed_attempts FROM staff_users WHERE id = $1::uuid", who.subject
    )
    assert shared == 3  # a trusted device's sign-in leaves the shared count alone

    # A client that keeps no cookie (the API) gets none.
    api = await sign_in(identity, who)
    answer = await complete(identity, api.mfa_challenge, recovery[0], remember=False)
    assert answer.token and not answer.device_token
    devices = await identity.pool.fetchval(
        "SELECT count(*) FROM trusted_devices WHERE staff_user_id = $1::uuid", who.subject
    )
    assert devices == 1
    listed = await identity.stub.ListStaffSessions(
        pb.ListStaffSessionsRequest(staff_user_id=who.subject), metadata=identity.md(ADMIN)
    )
    assert {s.user_agent for s in listed.items} == {"PortalTest/2.0"}


async def test_patient_sessions_keep_the_user_agent_bounded(identity: Identity) -> None:
    """As staff sessions do: a sign-in with the password alone, one with a second step, and
    the fresh session of a password change (the same browser's) all keep the User-Agent."""
    agent = "Mozilla/5.0 (Android 14) PortalTest/3.0 " + "y" * 400
    kept = agent[: sessions.USER_AGENT_MAX]
    patient_id = await identity.patient()
    issued = await identity.stub.IssueCredentials(
        pb.IssueCredentialsRequest(patient_id=patient_id, realm=pb.REALM_ONSITE),
        metadata=identity.md(FRONT_DESK),
    )

    async def agent_of(grant: pb.SessionGrant) -> str:
        found: str = await identity.pool.fetchval(
            "SELECT user_agent FROM sessions WHERE id = $1::uuid AND kind = 'patient'",
            grant.session.session_id,
        )
        return found

    async def first_step(password: str) -> pb.SessionGrant:
        grant: pb.SessionGrant = await identity.stub.PatientSignIn(
            pb.PatientSignInRequest(
                realm=pb.REALM_ONSITE,
                username=issued.username,
                password=password,
                user_agent=agent,
            ),
            metadata=identity.md(GATEWAY),
        )
        return grant

    first = await first_step(issued.password)
    assert first.token and await agent_of(first) == kept and len(kept) == 256
    pending = password_change_principal(patient_id, first.session.session_id)
    changed = await identity.stub.ChangePassword(
        pb.ChangePasswordRequest(current_password=issued.password, new_password=PASSWORD),
        metadata=identity.md(pending),
    )
    assert await agent_of(changed) == kept

    patient = Principal(kind="patient", subject=patient_id, realm="onsite")
    secret, _ = await enrol(identity, patient)
    challenged = await first_step(PASSWORD)
    assert challenged.mfa_challenge and not challenged.token
    grant = await identity.stub.CompleteMfaSignIn(
        pb.CompleteMfaSignInRequest(
            challenge=challenged.mfa_challenge,
            code=code(secret),
            kind=pb.SESSION_KIND_PATIENT,
            realm=pb.REALM_ONSITE,
            user_agent=agent,
        ),
        metadata=identity.md(GATEWAY),
    )
    assert grant.token and await agent_of(grant) == kept
