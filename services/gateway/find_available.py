"""Find Available for the pages: the search a form asked for, and the free times it found.

The search travels in the query string (ids, a date and the service's cursor; never PHI), so
results can be reloaded, bookmarked and paged with plain links.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from urllib.parse import urlencode

import grpc
from aiohttp import web

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.clinic_time import DATE_ERROR, day_start, parse_date, timestamp
from services.gateway.context import BACKENDS
from services.gateway.schedule_view import SlotDay, by_day
from services.runtime.errors import FieldErrors, field_errors, not_found_kind

PAGE_SIZE = 24
TOKEN_LIMIT = 100


@dataclass(frozen=True)
class Search:
    type_id: str = ""
    provider_id: str = ""
    from_date: str = ""  # "YYYY-MM-DD", clinic-local; "" = as soon as possible
    page: str = ""  # the service's next_page_token ("Show more")

    def query(self, **extra: str) -> str:
        pairs = {
            "type": self.type_id,
            "provider": self.provider_id,
            "from": self.from_date,
            "page": self.page,
            **extra,
        }
        return urlencode({k: v for k, v in pairs.items() if v})

    def first_page(self) -> Search:
        return replace(self, page="")


def _id(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return ""


def search_from(values: Mapping[str, str]) -> Search:
    """The search a query string names; malformed ids read as not given."""
    page = values.get("page", "").strip()
    return Search(
        type_id=_id(values.get("type", "")),
        provider_id=_id(values.get("provider", "")),
        from_date=values.get("from", "").strip()[:10],
        page=page if len(page) <= TOKEN_LIMIT else "",
    )


@dataclass
class Found:
    days: list[SlotDay] = field(default_factory=list)
    next_page: str = ""
    errors: FieldErrors = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(d.slots) for d in self.days)


def check(search: Search) -> FieldErrors:
    errors: FieldErrors = {}
    if not search.type_id:
        errors["type"] = ["Choose an appointment type."]
    if search.from_date and parse_date(search.from_date) is None:
        errors["from"] = [DATE_ERROR]
    return errors


async def find(
    request: web.Request,
    caller: Caller,
    search: Search,
    zone: tzinfo,
    moving: str = "",
    patient_id: str = "",
) -> Found:
    """The free times for `search`, soonest first, grouped by clinic-local day; the times of the
    patient's own appointments left out (a patient's always; staff's for `patient_id`), but that
    of `moving`, the one being rescheduled."""
    errors = check(search)
    if errors:
        return Found(errors=errors)
    rpc = pb.FindAvailabilityRequest(
        appointment_type_id=search.type_id,
        provider_id=search.provider_id,
        limit=PAGE_SIZE,
        page_token=search.page,
        moving_appointment_id=moving,
        patient_id=patient_id,
    )
    day = parse_date(search.from_date) if search.from_date else None
    if day is not None:
        getattr(rpc, "from").CopyFrom(timestamp(day_start(day, zone)))
    try:
        reply = await request.app[BACKENDS].scheduling.FindAvailability(
            rpc, metadata=auth.metadata(request, caller)
        )
    except grpc.aio.AioRpcError as exc:
        if not_found_kind(exc) == "provider":
            return Found(errors={"provider": ["Choose a provider from the list."]})
        if exc.code() == grpc.StatusCode.NOT_FOUND:  # unknown type, or not bookable online
            return Found(errors={"type": ["Choose an appointment type from the list."]})
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            found = field_errors(exc)
            # Field names are the request's; a bad cursor is just "start again".
            return Found(errors={_FIELD.get(k, "_form"): v for k, v in found.items()} or {})
        raise
    return Found(days=by_day(list(reply.slots), zone), next_page=reply.next_page_token)


_FIELD = {"appointment_type_id": "type", "provider_id": "provider", "from": "from"}
