"""Two-factor sign-in required per staff role: identity's setting and what it admits."""

from __future__ import annotations

import grpc
import pytest

from portal.identity.v1 import identity_pb2 as pb
from services.identity.servicer import MFA_REQUIRED
from services.runtime.errors import precondition_kind
from services.runtime.principal import MFA_ENROLMENT_ONLY, Principal
from tests.integration.test_identity import GATEWAY, Identity, identity
from tests.integration.test_mfa import (
    ADMIN,
    PASSWORD,
    code,
    enrol,
    second_step,
    sign_in,
    staff_user,
)

__all__ = ["identity"]  # the fixture, shared with test_identity


async def resolve(identity: Identity, token: str) -> pb.Session:
    session: pb.Session = await identity.stub.ResolveSession(
        pb.ResolveSessionRequest(token=token, touch=True), metadata=identity.md(GATEWAY)
    )
    return session


async def test_a_required_role_admits_only_enrolment_until_a_factor_is_confirmed(
    identity: Identity,
) -> None:
    nurse = await staff_user(identity)  # a clinician
    before = await sign_in(identity, nurse)
    assert before.token and not before.session.must_enrol_mfa

    policy = await identity.stub.SetStaffMfaPolicy(
        pb.SetStaffMfaPolicyRequest(required_roles=[pb.STAFF_ROLE_CLINICIAN]),
        metadata=identity.md(ADMIN),
    )
    assert list(policy.required_roles) == [pb.STAFF_ROLE_CLINICIAN]
    read = await identity.stub.GetStaffMfaPolicy(
        pb.GetStaffMfaPolicyRequest(), metadata=identity.md(ADMIN)
    )
    assert list(read.required_roles) == [pb.STAFF_ROLE_CLINICIAN]
    logged = await identity.pool.fetchval(
        "SELECT detail FROM audit_log WHERE action = 'staff.mfa_policy' ORDER BY id DESC LIMIT 1"
    )
    assert logged == "required=clinician"

    # Sessions say so at once, the one from before too; and so does a new sign-in.
    assert (await resolve(identity, before.token)).must_enrol_mfa
    grant = await sign_in(identity, nurse)
    assert grant.token and grant.session.must_enrol_mfa

    # The principal the gateway makes of such a session reaches nothing but enrolment.
    pending = Principal(
        kind="staff", subject=nurse.subject, role=MFA_ENROLMENT_ONLY, name=nurse.name
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.SearchPatients(
            pb.SearchPatientsRequest(query="a"), metadata=identity.md(pending)
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.ChangeStaffPassword(
            pb.ChangePasswordRequest(current_password=PASSWORD, new_password="x" * 20),
            metadata=identity.md(pending),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    status = await identity.stub.GetMfaStatus(
        pb.GetMfaStatusRequest(), metadata=identity.md(pending)
    )
    assert not status.enrolled
    started = await identity.stub.StartTotpEnrolment(
        pb.StartTotpEnrolmentRequest(), metadata=identity.md(pending)
    )
    await identity.stub.ConfirmTotp(
        pb.ConfirmTotpRequest(code=code(started.secret)), metadata=identity.md(pending)
    )

    # Enrolled: the same session is a normal one now, and sign-in takes the second step.
    assert not (await resolve(identity, grant.token)).must_enrol_mfa
    challenged = await sign_in(identity, nurse)
    assert challenged.mfa_challenge and not challenged.token
    done = await second_step(identity, challenged.mfa_challenge, code(started.secret, 1))
    assert done.token and not done.session.must_enrol_mfa

    # A required factor cannot be turned off by its owner.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.RemoveTotp(
            pb.RemoveTotpRequest(code=code(started.secret)), metadata=identity.md(nurse)
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert precondition_kind(refused.value) == "MFA_REQUIRED"


async def test_other_roles_are_unaffected_and_only_admins_set_it(identity: Identity) -> None:
    nurse = await staff_user(identity)
    await identity.stub.SetStaffMfaPolicy(
        pb.SetStaffMfaPolicyRequest(required_roles=[pb.STAFF_ROLE_FRONT_DESK, pb.STAFF_ROLE_ADMIN]),
        metadata=identity.md(ADMIN),
    )
    grant = await sign_in(identity, nurse)
    assert grant.token and not grant.session.must_enrol_mfa
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.SetStaffMfaPolicy(
            pb.SetStaffMfaPolicyRequest(), metadata=identity.md(nurse)
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.GetStaffMfaPolicy(
            pb.GetStaffMfaPolicyRequest(), metadata=identity.md(nurse)
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.SetStaffMfaPolicy(
            pb.SetStaffMfaPolicyRequest(required_roles=[pb.STAFF_ROLE_UNSPECIFIED]),
            metadata=identity.md(ADMIN),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    cleared = await identity.stub.SetStaffMfaPolicy(
        pb.SetStaffMfaPolicyRequest(), metadata=identity.md(ADMIN)
    )
    assert list(cleared.required_roles) == []


async def test_a_required_role_is_told_why_its_factor_cannot_be_turned_off(
    identity: Identity,
) -> None:
    nurse = await staff_user(identity)
    await enrol(identity, nurse)

    async def status() -> pb.MfaStatus:
        found: pb.MfaStatus = await identity.stub.GetMfaStatus(
            pb.GetMfaStatusRequest(), metadata=identity.md(nurse)
        )
        return found

    assert (await status()).removal_refused == ""
    await identity.stub.SetStaffMfaPolicy(
        pb.SetStaffMfaPolicyRequest(required_roles=[pb.STAFF_ROLE_CLINICIAN]),
        metadata=identity.md(ADMIN),
    )
    found = await status()
    assert found.enrolled and found.removal_refused == MFA_REQUIRED
