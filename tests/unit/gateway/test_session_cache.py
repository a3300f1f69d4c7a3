"""The gateway's session cache: how long entries live, when they are not kept, and which identity
calls flush it."""

from __future__ import annotations

import hashlib
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from portal.identity.v1 import identity_pb2 as pb
from services.gateway.backends import FlushSessions, is_read
from services.gateway.session_cache import SessionCache
from services.gateway.settings import GatewaySettings
from tests.conftest import TEST_GATEWAY_ENV

NOW = 1_800_000_000.0  # wall clock, seconds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def session(ends_in: float = 900.0, session_id: str = "s1") -> pb.Session:
    ends = Timestamp()
    ends.FromNanoseconds(int((NOW + ends_in) * 1e9))
    return pb.Session(session_id=session_id, kind=pb.SESSION_KIND_STAFF, expires_at=ends)


def cache(ttl: float = 15.0, max_entries: int = 100) -> tuple[SessionCache, Clock]:
    clock = Clock()
    found = SessionCache(
        ttl=ttl, max_entries=max_entries, clock=clock, wall_clock=lambda: NOW, enabled=True
    )
    return found, clock


def test_an_entry_lives_for_the_ttl() -> None:
    sessions, clock = cache(ttl=15)
    sessions.put("token", session(), sessions.generation)
    clock.now += 14.9
    assert sessions.get("token") == session()
    clock.now += 0.2
    assert sessions.get("token") is None
    assert len(sessions) == 0


def test_an_entry_never_outlives_its_session() -> None:
    sessions, clock = cache(ttl=15)
    sessions.put("token", session(ends_in=3), sessions.generation)
    clock.now += 2.9
    assert sessions.get("token") is not None
    clock.now += 0.2
    assert sessions.get("token") is None


def test_a_session_already_over_is_not_kept() -> None:
    sessions, _ = cache()
    sessions.put("token", session(ends_in=-1), sessions.generation)
    assert len(sessions) == 0


def test_an_answer_read_before_a_flush_is_not_kept() -> None:
    """A change that raced the lookup: its flush came between the question and the answer."""
    sessions, _ = cache()
    asked_at = sessions.generation
    sessions.flush()
    sessions.put("token", session(), asked_at)
    assert sessions.get("token") is None
    sessions.put("token", session(), sessions.generation)
    assert sessions.get("token") is not None


def test_a_flush_forgets_everything() -> None:
    sessions, _ = cache()
    sessions.put("a", session(session_id="a"), sessions.generation)
    sessions.put("b", session(session_id="b"), sessions.generation)
    sessions.flush()
    assert sessions.get("a") is None and sessions.get("b") is None


def test_nothing_is_used_or_kept_while_not_trusted() -> None:
    sessions, _ = cache()
    sessions.put("token", session(), sessions.generation)
    sessions.trust(False)
    assert sessions.get("token") is None
    sessions.put("token", session(), sessions.generation)
    sessions.trust(True)
    assert sessions.get("token") is None  # trusted again: it starts from empty
    assert len(sessions) == 0


def test_trusting_again_does_not_let_an_older_lookup_in() -> None:
    sessions, _ = cache()
    asked_at = sessions.generation
    sessions.trust(False)  # the stream broke while identity was asked
    sessions.trust(True)
    sessions.put("token", session(), asked_at)
    assert sessions.get("token") is None


def test_a_zero_ttl_switches_the_cache_off() -> None:
    sessions, _ = cache(ttl=0)
    sessions.put("token", session(), sessions.generation)
    assert sessions.get("token") is None


def test_the_size_is_bounded_and_the_oldest_goes_first() -> None:
    sessions, _ = cache(max_entries=3)
    for name in "abcd":
        sessions.put(name, session(session_id=name), sessions.generation)
    assert len(sessions) == 3
    assert sessions.get("a") is None
    assert [sessions.get(name).session_id for name in "bcd"] == ["b", "c", "d"]  # type: ignore[union-attr]


def test_tokens_are_kept_only_as_their_hashes() -> None:
    sessions, _ = cache()
    sessions.put("the-raw-token", session(), sessions.generation)
    keys = list(sessions._entries)
    assert keys == [hashlib.sha256(b"the-raw-token").digest()]
    assert all(b"the-raw-token" not in key for key in keys)


def test_the_setting_defaults_to_identitys_touch_interval_and_zero_turns_it_off() -> None:
    assert GatewaySettings.from_env(TEST_GATEWAY_ENV).session_cache_seconds == 15.0
    env = {**TEST_GATEWAY_ENV, "PORTAL_SESSION_CACHE_SECONDS": "0"}
    assert GatewaySettings.from_env(env).session_cache_seconds == 0.0


# Every identity RPC that does not flush the cache: each must only read. A new RPC lands in the
# other set unless its name begins with a read word; then it must be added here, knowingly.
READS = {
    "ResolveSession",
    "WatchSessionChanges",
    "CheckSignInRate",
    "ListStaffUsers",
    "ListStaffSessions",
    "GetStaffMfaPolicy",
    "SearchPatients",
    "GetPatient",
    "GetPatientSummaries",
    "SuggestCredentials",
    "GetMyProfile",
    "ListMyProfileUpdates",
    "ListProfileUpdates",
    "ListWorkQueue",
    "ListAuditEvents",
    "VerifyAuditLog",
    "GetMfaStatus",
}


def test_exactly_the_reading_identity_calls_leave_the_cache_alone() -> None:
    service = pb.DESCRIPTOR.services_by_name["IdentityService"]
    names = {method.name for method in service.methods}
    assert {name for name in names if is_read(f"/{service.full_name}/{name}")} == READS
    # The calls that end or alter sessions all flush.
    for write in (
        "EndSession",
        "UpdateStaffUser",
        "RevokeStaffSession",
        "ResetStaffPassword",
        "SetStaffMfaPolicy",
        "UpdatePatient",
        "ResetCredentials",
        "ConfirmTotp",
        "RemoveTotp",
        "ChangePassword",
    ):
        assert write in names and not is_read(f"/{service.full_name}/{write}")


class Call:
    """What a unary continuation hands back: awaiting it gives the answer or raises."""

    def __init__(self, error: grpc.aio.AioRpcError | None) -> None:
        self.error = error

    def __await__(self) -> Any:
        if self.error is not None:
            raise self.error
        return "answer"
        yield  # a generator, so that awaiting works


async def through_interceptor(method: str, sessions: SessionCache, *, fails: bool) -> int:
    """The generation after one call of `method` (failing or not) through FlushSessions."""
    error = grpc.aio.AioRpcError(
        grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "late", ""
    )

    async def continuation(details: Any, request: Any) -> Call:
        return Call(error if fails else None)

    details = grpc.aio.ClientCallDetails(method, None, None, None, None)
    interceptor = FlushSessions(sessions)
    try:
        found = await interceptor.intercept_unary_unary(continuation, details, None)
        # The answer, or (reads, passed through untouched) the call that gives it.
        assert (await found if isinstance(found, Call) else found) == "answer"
        assert not fails
    except grpc.aio.AioRpcError:
        assert fails
    return sessions.generation


async def test_identity_writes_flush_the_cache_even_when_they_fail_and_reads_do_not() -> None:
    sessions, _ = cache()
    base = "/portal.identity.v1.IdentityService/"
    assert await through_interceptor(base + "ResolveSession", sessions, fails=False) == 0
    assert await through_interceptor(base + "EndSession", sessions, fails=False) == 1
    # A call can fail after identity committed it (a deadline): flush all the same.
    assert await through_interceptor(base + "UpdateStaffUser", sessions, fails=True) == 2
    assert await through_interceptor(base + "ListStaffUsers", sessions, fails=True) == 2
