"""The patient's Profile page: their record, and requests to change their contact details.

The form sends all four contact fields; identity keeps only those that differ from the record
and checks them (the gateway applies the shared text rule first, nothing more). A new request
replaces a pending one, so the form starts from the pending request's values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

import aiohttp_jinja2
import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth, contact_changes
from services.gateway.contact_changes import FIELDS, LABELS
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.patient import present
from services.gateway.patient.session import (
    my_profile,
    page_url,
    realm_of,
    session_ended,
    signed_in,
)
from services.gateway.patient.views import page_context
from services.runtime import text
from services.runtime.errors import FieldErrors, field_errors

# "No preference" first, then the channels.
CONTACT_METHODS = sorted(contact_changes.PREFERRED_CONTACT.items(), key=lambda item: item[0] != "")


@dataclass(frozen=True)
class Change:
    label: str
    lines: list[str]  # the new value, line by line (an address has several); [] clears it


@dataclass(frozen=True)
class Request:
    """One of the patient's change requests, as the page shows it."""

    status: str
    status_label: str
    badge: str
    requested_on: str
    decided_on: str
    changes: list[Change]
    note_lines: list[str]


def on_day(request: web.Request, ts: Timestamp) -> str:
    """A timestamp as a long date in the clinic's time zone ("" when unset)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return ""
    day = ts.ToDatetime(tzinfo=UTC).astimezone(request.app[SETTINGS].clinic_timezone).date()
    return present.long_date(day.isoformat())


def presented(request: web.Request, update: pb.ProfileUpdate) -> Request:
    label, badge = contact_changes.status(update.status)
    proposed = update.proposed
    return Request(
        status=update.status,
        status_label=label,
        badge=badge,
        requested_on=on_day(request, update.created_at),
        decided_on=on_day(request, update.decided_at),
        changes=[
            Change(LABELS[name], contact_changes.lines(name, getattr(proposed, name)))
            for name in contact_changes.asked(proposed)
        ],
        note_lines=update.decision_note.splitlines(),
    )


async def _my_updates(request: web.Request, who: auth.Caller) -> list[pb.ProfileUpdate]:
    try:
        reply = await request.app[BACKENDS].identity.ListMyProfileUpdates(
            pb.ListMyProfileUpdatesRequest(), metadata=auth.metadata(request, who)
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise session_ended(realm_of(request)) from None
        raise
    return list(reply.items)


async def _page(
    request: web.Request,
    who: auth.Caller,
    posted: Mapping[str, str] | None = None,
    errors: FieldErrors | None = None,
    status: int = 200,
) -> web.Response:
    record, updates = await asyncio.gather(my_profile(request, who), _my_updates(request, who))
    pending = next((u for u in updates if u.status == "pending"), None)
    values = {name: getattr(record, name) for name in FIELDS}
    if pending is not None:
        values.update(
            {n: getattr(pending.proposed, n) for n in FIELDS if pending.proposed.HasField(n)}
        )
    return aiohttp_jinja2.render_template(
        "patient/profile.html",
        request,
        page_context(
            request,
            who,
            present.profile(record),
            "profile",
            username=who.session.username,
            values={**values, **(posted or {})},
            errors=errors or {},
            contact_methods=CONTACT_METHODS,
            pending=presented(request, pending) if pending else None,
            requests=[presented(request, u) for u in updates],
        ),
        status=status,
    )


async def page(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return await _page(request, who)


async def propose(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    form = await request.post()
    posted: dict[str, str] = {name: str(form.get(name, "")) for name in FIELDS}
    errors: FieldErrors = {}
    cleaned: dict[str, str] = {}
    for name, value in posted.items():
        try:
            cleaned[name] = text.clean(value, multiline=name == "address")
        except text.TextError as exc:
            errors[name] = [str(exc)]
    if errors:
        return await _page(request, who, posted, errors, status=400)
    try:
        await request.app[BACKENDS].identity.ProposeProfileUpdate(
            pb.ProposeProfileUpdateRequest(proposed=pb.ContactDetails(**cleaned)),
            metadata=auth.metadata(request, who),
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise session_ended(realm_of(request)) from None
        if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        found = field_errors(exc)
        # A message about the request as a whole belongs to the form, not to one field.
        errors = {("_form" if name not in FIELDS else name): msgs for name, msgs in found.items()}
        return await _page(
            request,
            who,
            posted,
            errors or {"_form": [exc.details() or "Please check the form."]},
            400,
        )
    return web.Response(
        status=303,
        headers={"Location": page_url(realm_of(request), "profile", "profile-update-sent")},
    )
