"""What the staff scheduling pages share: rendering in the Practice tab, the clinic's zone,
the provider and type lists, and ids from the URL."""

from __future__ import annotations

import uuid
from datetime import tzinfo
from typing import TYPE_CHECKING

import grpc
from aiohttp import web

from portal.scheduling.v1 import scheduling_pb2 as pb
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.context import BACKENDS, SETTINGS

if TYPE_CHECKING:  # the async stub type exists only in the .pyi
    from portal.scheduling.v1.scheduling_pb2_grpc import SchedulingServiceAsyncStub


def scheduling(request: web.Request) -> SchedulingServiceAsyncStub:
    return request.app[BACKENDS].scheduling


def zone(request: web.Request) -> tzinfo:
    return request.app[SETTINGS].clinic_timezone


def url_id(request: web.Request, name: str) -> str:
    """An id from the URL; anything that is not one is a 404, like an unknown one."""
    try:
        return str(uuid.UUID(request.match_info[name]))
    except ValueError:
        raise web.HTTPNotFound() from None


async def providers(
    request: web.Request, caller: Caller, *, include_inactive: bool = False
) -> list[pb.Provider]:
    reply = await scheduling(request).ListProviders(
        pb.ListProvidersRequest(include_inactive=include_inactive),
        metadata=auth.metadata(request, caller),
    )
    return list(reply.items)


async def appointment_types(request: web.Request, caller: Caller) -> list[pb.AppointmentType]:
    reply = await scheduling(request).ListAppointmentTypes(
        pb.ListAppointmentTypesRequest(), metadata=auth.metadata(request, caller)
    )
    return list(reply.items)


def not_found_as_404(exc: grpc.aio.AioRpcError) -> None:
    """Re-raise an unknown id as a 404 page (a bad id is INVALID_ARGUMENT from the service)."""
    if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        raise web.HTTPNotFound() from None
