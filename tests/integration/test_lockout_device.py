"""Lockout counted before verifying, device cookies with their own budget, admin unlock."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from portal.identity.v1 import identity_pb2 as pb
from services.identity import lockout
from services.runtime.principal import Principal
from tests.integration.test_identity import GATEWAY, Identity
from tests.integration.test_identity import identity as identity

ADMIN = Principal(
    kind="staff", subject="33333333-3333-3333-3333-333333333333", role="admin", name="root"
)
PASSWORD = "Correct-Horse-Battery-9"


async def new_staff(identity: Identity, username: str) -> str:
    user = await identity.stub.CreateStaffUser(
        pb.CreateStaffUserRequest(
            username=username,
            display_name="Grace Hopper",
            role=pb.STAFF_ROLE_CLINICIAN,
            password=PASSWORD,
        ),
        metadata=identity.md(ADMIN),
    )
    return user.id


async def sign_in(
    identity: Identity, username: str, password: str, device: str = "", *, remember: bool = True
) -> pb.SessionGrant | None:
    try:
        return await identity.stub.StaffSignIn(
            pb.SignInRequest(
                username=username,
                password=password,
                device_token=device,
                remember_device=remember,
            ),
            metadata=identity.md(GATEWAY),
        )
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
        return None


async def test_parallel_wrong_guesses_never_exceed_the_cap(identity: Identity) -> None:
    await new_staff(identity, "burst")
    results = await asyncio.gather(*(sign_in(identity, "burst", f"wrong-{i}") for i in range(20)))
    assert all(r is None for r in results)
    # Each verified guess is audited as wrong/locked_now; the rest were refused unverified.
    rows = await identity.pool.fetch(
        "SELECT outcome FROM audit_log WHERE action = 'auth.staff_sign_in' AND actor_name = 'burst'"
    )
    verified = sum(r["outcome"] in ("wrong", "locked_now") for r in rows)
    assert verified == lockout.FAILURES_BEFORE_LOCK
    assert sum(r["outcome"] == "locked" for r in rows) == 20 - lockout.FAILURES_BEFORE_LOCK
    # Locked: even the right password fails now.
    assert await sign_in(identity, "burst", PASSWORD) is None


async def test_attacker_without_cookie_cannot_lock_the_trusted_device(identity: Identity) -> None:
    await new_staff(identity, "victim")
    first = await sign_in(identity, "victim", PASSWORD)
    assert first is not None and first.device_token
    device = first.device_token
    # An attacker elsewhere (no device cookie) exhausts the shared budget.
    for i in range(lockout.FAILURES_BEFORE_LOCK + 3):
        assert await sign_in(identity, "victim", f"guess-{i}") is None
    assert await sign_in(identity, "victim", PASSWORD) is None  # cookie-less clients locked
    # The user's own device still signs in, and keeps its cookie.
    again = await sign_in(identity, "victim", PASSWORD, device)
    assert again is not None and again.device_token == ""
    # A cookie of another user is no cookie at all: the shared (locked) budget applies.
    await new_staff(identity, "other")
    assert await sign_in(identity, "other", PASSWORD, device) is not None  # fresh, own budget
    assert await sign_in(identity, "victim", PASSWORD, "forged-cookie") is None


async def test_a_client_that_keeps_no_cookie_gets_no_device(identity: Identity) -> None:
    """API sign-ins ask for no device: none is issued, and none is stored."""
    user_id = await new_staff(identity, "apiclient")
    grant = await sign_in(identity, "apiclient", PASSWORD, remember=False)
    assert grant is not None and grant.token and grant.device_token == ""
    stored = await identity.pool.fetchval(
        "SELECT count(*) FROM trusted_devices WHERE staff_user_id = $1", uuid.UUID(user_id)
    )
    assert stored == 0
    grant = await sign_in(identity, "apiclient", PASSWORD)
    assert grant is not None and grant.device_token


async def test_the_device_budget_locks_only_that_device(identity: Identity) -> None:
    await new_staff(identity, "typo")
    grant = await sign_in(identity, "typo", PASSWORD)
    assert grant is not None
    device = grant.device_token
    for i in range(lockout.FAILURES_BEFORE_LOCK):
        assert await sign_in(identity, "typo", f"typo-{i}", device) is None
    assert await sign_in(identity, "typo", PASSWORD, device) is None  # this device is locked
    assert await sign_in(identity, "typo", PASSWORD) is not None  # the shared budget is not


async def test_admin_unlock_opens_a_locked_staff_user(identity: Identity) -> None:
    user_id = await new_staff(identity, "locked")
    for i in range(lockout.FAILURES_BEFORE_LOCK):
        assert await sign_in(identity, "locked", f"nope-{i}") is None
    listed = await identity.stub.ListStaffUsers(
        pb.ListStaffUsersRequest(), metadata=identity.md(ADMIN)
    )
    shown = next(u for u in listed.items if u.id == user_id)
    assert shown.HasField("locked_until")
    assert await sign_in(identity, "locked", PASSWORD) is None
    await identity.stub.UnlockStaffUser(
        pb.UnlockStaffUserRequest(id=user_id), metadata=identity.md(ADMIN)
    )
    assert await sign_in(identity, "locked", PASSWORD) is not None
    actions = await identity.pool.fetch(
        "SELECT action FROM audit_log WHERE action = 'staff.unlock'"
    )
    assert len(actions) == 1


async def test_current_password_checks_of_password_changes_are_throttled(
    identity: Identity,
) -> None:
    user_id = await new_staff(identity, "changer")
    me = Principal(kind="staff", subject=user_id, role="clinician", name="changer")
    for i in range(lockout.FAILURES_BEFORE_LOCK):
        try:
            await identity.stub.ChangeStaffPassword(
                pb.ChangePasswordRequest(
                    current_password=f"bad-{i}", new_password="N3w-pass-words!"
                ),
                metadata=identity.md(me),
            )
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Five wrong current passwords locked the account: the right one is refused too.
    try:
        await identity.stub.ChangeStaffPassword(
            pb.ChangePasswordRequest(current_password=PASSWORD, new_password="N3w-pass-words!"),
            metadata=identity.md(me),
        )
        raise AssertionError("the change went through while locked")
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
