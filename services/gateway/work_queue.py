"""The staff work queue, composed: each service keeps its own queue; the gateway merges them.

identity holds profile updates, forms holds forms to review and refill requests, scheduling
holds portal bookings. The three are asked at once; one that is down leaves out only its part
(an `Outage` the page names). No status means "what waits for staff": pending profile updates,
completed or signed forms, requested refills, and patients' changes to appointments that have
not started yet. The count badge of the staff navigation uses `badge_count`, cached for a few
seconds per gateway process, so a page render costs at most one set of count calls per TTL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from portal.forms.v1 import forms_pb2
from portal.identity.v1 import identity_pb2
from portal.scheduling.v1 import scheduling_pb2
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.backends import Outage, section
from services.gateway.context import BACKENDS

# Each kind, the service that holds it, and the statuses its items can have.
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "form_review": ("forms", ("completed", "signed", "accepted", "returned")),
    "refill_request": (
        "forms",
        ("requested", "approved", "denied", "needs_appointment", "withdrawn"),
    ),
    "profile_update": ("identity", ("pending", "accepted", "rejected", "replaced")),
    "portal_booking": ("scheduling", ("booked", "cancelled", "rescheduled")),
}
KIND_LABELS = {
    "form_review": "Form to review",
    "refill_request": "Refill request",
    "profile_update": "Profile update",
    "portal_booking": "Portal booking",
}
STATUSES = tuple(dict.fromkeys(s for _, statuses in KINDS.values() for s in statuses))
SERVICES = ("identity", "forms", "scheduling")
LIMIT = 500  # per service
BADGE_TTL = 5.0  # seconds a count is reused by this gateway process


@dataclass(frozen=True)
class Item:
    kind: str
    id: str
    patient_id: str
    summary: str
    created_at: datetime | None
    status: str


@dataclass(frozen=True)
class Queue:
    items: list[Item]  # newest first
    outages: list[Outage] = field(default_factory=list)

    @property
    def waiting(self) -> int:
        return len(self.items)


def _when(ts: Timestamp) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def _services(kind: str) -> tuple[str, ...]:
    """The services a kind filter concerns (forms refuses kinds it does not hold)."""
    return (KINDS[kind][0],) if kind else SERVICES


def _calls(
    request: web.Request, caller: Caller, kind: str, status: str, *, count_only: bool
) -> dict[str, Awaitable[Any]]:
    backends = request.app[BACKENDS]
    md = auth.metadata(request, caller)
    calls: dict[str, Awaitable[Any]] = {}
    wanted = _services(kind)
    if "identity" in wanted:
        # identity's "" is every status but replaced; the queue's "" is what waits.
        calls["identity"] = backends.identity.ListWorkQueue(
            identity_pb2.ListWorkQueueRequest(
                kind=kind, status=status or "pending", limit=LIMIT, count_only=count_only
            ),
            metadata=md,
        )
    if "forms" in wanted:
        calls["forms"] = backends.forms.ListWorkQueue(
            forms_pb2.ListWorkQueueRequest(kind=kind, status=status, count_only=count_only),
            metadata=md,
        )
    if "scheduling" in wanted:
        calls["scheduling"] = backends.scheduling.ListWorkQueue(
            scheduling_pb2.ListWorkQueueRequest(
                kind=kind, status=status, limit=LIMIT, count_only=count_only
            ),
            metadata=md,
        )
    return calls


async def _gather(calls: dict[str, Awaitable[Any]]) -> dict[str, Any]:
    replies = await asyncio.gather(*(section(call) for call in calls.values()))
    return dict(zip(calls, replies, strict=True))


async def merged(request: web.Request, caller: Caller, kind: str = "", status: str = "") -> Queue:
    """Every service's items matching the filters, newest first; outages named."""
    replies = await _gather(_calls(request, caller, kind, status, count_only=False))
    items: list[Item] = []
    outages: list[Outage] = []
    for reply in replies.values():
        if isinstance(reply, Outage):
            outages.append(reply)
            continue
        items += [
            Item(i.kind, i.id, i.patient_id, i.summary, _when(i.created_at), i.status)
            for i in reply.items
        ]
    epoch = datetime.min.replace(tzinfo=UTC)
    items.sort(key=lambda i: (i.created_at or epoch, i.id), reverse=True)
    return Queue(items, outages)


async def count(request: web.Request, caller: Caller) -> int:
    """How many items wait (the parts of services that are down are left out)."""
    replies = await _gather(_calls(request, caller, "", "", count_only=True))
    total = 0
    for reply in replies.values():
        if not isinstance(reply, Outage):
            total += reply.total
    return total


@dataclass
class BadgeCache:
    """The last count and when it was taken; one per gateway process (app)."""

    value: int | None = None
    taken: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fresh(self) -> bool:
        return time.monotonic() - self.taken < BADGE_TTL

    def store(self, value: int) -> None:
        self.value, self.taken = value, time.monotonic()


BADGE = web.AppKey("work_queue_badge", BadgeCache)
# The count the layout shows (None: not known).
BADGE_COUNT: web.RequestKey[int | None] = web.RequestKey("work_queue_count", int | None)  # type: ignore[arg-type]


async def badge_count(request: web.Request, caller: Caller) -> int | None:
    """The waiting count for the navigation badge: cached, and never failing a page."""
    cache = request.app.get(BADGE)
    if cache is None:
        return None
    if cache.fresh():
        return cache.value
    async with cache.lock:  # one refresh at a time; the others reuse its result
        if not cache.fresh():
            try:
                cache.store(await count(request, caller))
            except grpc.aio.AioRpcError:
                return cache.value  # the badge is a hint; the page must still render
    return cache.value


def remember(request: web.Request, queue: Queue) -> None:
    """The work queue page's own unfiltered, complete answer is the freshest count there is."""
    cache = request.app.get(BADGE)
    if cache is not None and not queue.outages:
        cache.store(queue.waiting)
        request[BADGE_COUNT] = queue.waiting
