"""Staff lifecycle over real gRPC: disable, role, temporary passwords, own password, sessions."""

from __future__ import annotations

import grpc
import pytest

from portal.identity.v1 import identity_pb2 as pb
from services.identity import sessions
from services.runtime.errors import precondition_kind
from services.runtime.principal import Principal
from tests.integration.test_identity import GATEWAY, Identity
from tests.integration.test_identity import identity as identity
from tests.integration.test_lockout_device import ADMIN, PASSWORD, new_staff, sign_in


async def resolve(identity: Identity, token: str) -> pb.Session | None:
    try:
        return await identity.stub.ResolveSession(
            pb.ResolveSessionRequest(token=token), metadata=identity.md(GATEWAY)
        )
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return None


async def test_disabling_ends_the_users_sessions_at_once(identity: Identity) -> None:
    user_id = await new_staff(identity, "leaver")
    grant = await sign_in(identity, "leaver", PASSWORD)
    assert grant is not None and await resolve(identity, grant.token) is not None
    user = await identity.stub.UpdateStaffUser(
        pb.UpdateStaffUserRequest(id=user_id, disabled=True), metadata=identity.md(ADMIN)
    )
    assert user.disabled
    assert await resolve(identity, grant.token) is None
    assert await sign_in(identity, "leaver", PASSWORD) is None
    revoked = await identity.pool.fetchval(
        "SELECT count(*) FROM sessions WHERE staff_user_id = $1 AND revoked_at IS NOT NULL",
        grant.session.staff_user_id,
    )
    assert revoked == 1
    # Enabled again, the user signs in; a role change shows in the next session.
    await identity.stub.UpdateStaffUser(
        pb.UpdateStaffUserRequest(id=user_id, disabled=False, role=pb.STAFF_ROLE_FRONT_DESK),
        metadata=identity.md(ADMIN),
    )
    again = await sign_in(identity, "leaver", PASSWORD)
    assert again is not None and again.session.role == pb.STAFF_ROLE_FRONT_DESK
    details = [
        r["detail"]
        for r in await identity.pool.fetch(
            "SELECT detail FROM audit_log WHERE action = 'staff.update' ORDER BY id"
        )
    ]
    assert details == [
        f"user={user_id} disabled=true",
        f"user={user_id} disabled=false role=front_desk",
    ]


async def test_the_last_admin_cannot_be_disabled_or_demoted(identity: Identity) -> None:
    created = await identity.stub.CreateStaffUser(
        pb.CreateStaffUserRequest(
            username="onlyadmin", display_name="Root", role=pb.STAFF_ROLE_ADMIN
        ),
        metadata=identity.md(ADMIN),
    )
    for change in (
        pb.UpdateStaffUserRequest(id=created.id, disabled=True),
        pb.UpdateStaffUserRequest(id=created.id, role=pb.STAFF_ROLE_CLINICIAN),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await identity.stub.UpdateStaffUser(change, metadata=identity.md(ADMIN))
        assert precondition_kind(caught.value) == "LAST_ADMIN"


async def test_a_temporary_password_must_be_changed_before_anything_else(
    identity: Identity,
) -> None:
    created = await identity.stub.CreateStaffUser(
        pb.CreateStaffUserRequest(
            username="newbie", display_name="New Person", role=pb.STAFF_ROLE_CLINICIAN
        ),
        metadata=identity.md(ADMIN),
    )
    assert created.temporary_password and created.must_change_password
    grant = await sign_in(identity, "newbie", created.temporary_password)
    assert grant is not None and grant.session.must_change_password
    session = await resolve(identity, grant.token)
    assert session is not None and session.must_change_password
    me = Principal(kind="staff", subject=created.id, role="clinician", name="newbie")
    changed = await identity.stub.ChangeStaffPassword(
        pb.ChangePasswordRequest(
            current_password=created.temporary_password, new_password="Brand-New-Secret-42"
        ),
        metadata=identity.md(me),
    )
    assert not changed.session.must_change_password
    assert await resolve(identity, grant.token) is None  # the old session ended
    assert await resolve(identity, changed.token) is not None
    assert await sign_in(identity, "newbie", "Brand-New-Secret-42") is not None

    # An admin's reset: a new temporary password, sessions ended, change required again.
    reset = await identity.stub.ResetStaffPassword(
        pb.ResetStaffPasswordRequest(id=created.id), metadata=identity.md(ADMIN)
    )
    assert reset.temporary_password and reset.HasField("expires_at")
    assert await resolve(identity, changed.token) is None
    again = await sign_in(identity, "newbie", reset.temporary_password)
    assert again is not None and again.session.must_change_password
    # An expired temporary password is refused.
    await identity.pool.execute(
        "UPDATE staff_users SET temporary_expires_at = now() - interval '1 minute' WHERE id = $1",
        again.session.staff_user_id,
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await identity.stub.StaffSignIn(
            pb.SignInRequest(username="newbie", password=reset.temporary_password),
            metadata=identity.md(GATEWAY),
        )
    assert precondition_kind(caught.value) == "TEMPORARY_PASSWORD_EXPIRED"


async def test_admins_list_and_revoke_staff_sessions(identity: Identity) -> None:
    user_id = await new_staff(identity, "roamer")
    one = await sign_in(identity, "roamer", PASSWORD)
    two = await sign_in(identity, "roamer", PASSWORD)
    assert one is not None and two is not None
    listed = await identity.stub.ListStaffSessions(
        pb.ListStaffSessionsRequest(staff_user_id=user_id), metadata=identity.md(ADMIN)
    )
    assert {s.id for s in listed.items} == {one.session.session_id, two.session.session_id}
    await identity.stub.RevokeStaffSession(
        pb.RevokeStaffSessionRequest(session_id=one.session.session_id),
        metadata=identity.md(ADMIN),
    )
    assert await resolve(identity, one.token) is None
    assert await resolve(identity, two.token) is not None
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await identity.stub.RevokeStaffSession(
            pb.RevokeStaffSessionRequest(session_id=one.session.session_id),
            metadata=identity.md(ADMIN),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # Only admins manage staff.
    clinician = Principal(kind="staff", subject=user_id, role="clinician", name="roamer")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await identity.stub.ListStaffSessions(
            pb.ListStaffSessionsRequest(), metadata=identity.md(clinician)
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_staff_sessions_keep_the_user_agent_bounded(identity: Identity) -> None:
    user_id = await new_staff(identity, "surfer")
    agent = "Mozilla/5.0 (X11; Linux x86_64) PortalTest/1.0 " + "x" * 400
    grant = await identity.stub.StaffSignIn(
        pb.SignInRequest(username="surfer", password=PASSWORD, user_agent=agent),
        metadata=identity.md(GATEWAY),
    )

    async def agents() -> dict[str, str]:
        listed = await identity.stub.ListStaffSessions(
            pb.ListStaffSessionsRequest(staff_user_id=user_id), metadata=identity.md(ADMIN)
        )
        return {s.id: s.user_agent for s in listed.items}

    assert await agents() == {grant.session.session_id: agent[: sessions.USER_AGENT_MAX]}
    assert len(agent[: sessions.USER_AGENT_MAX]) == 256
    # The fresh session of a password change continues the same browser's.
    me = Principal(
        kind="staff",
        subject=user_id,
        role="clinician",
        name="surfer",
        session_id=grant.session.session_id,
    )
    changed = await identity.stub.ChangeStaffPassword(
        pb.ChangePasswordRequest(current_password=PASSWORD, new_password="Another-Secret-77"),
        metadata=identity.md(me),
    )
    assert await agents() == {changed.session.session_id: agent[: sessions.USER_AGENT_MAX]}
