"""Sections of staff pages that come from forms or scheduling: each degrades on its own.

A page about a patient is identity's; a section another service fills shows that service's
outage in its place, and the rest of the page still renders.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from aiohttp import web

from portal.forms.v1 import forms_pb2
from services.gateway import auth
from services.gateway.auth import Caller
from services.gateway.backends import Outage, section
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.staff.common import format_when, when


@dataclass(frozen=True)
class FormsSection:
    opened: str  # when forms opened the chart; "" while it has not yet (events are async)
    unavailable: str = ""  # the outage message that replaces the section


async def forms_section(request: web.Request, caller: Caller, patient_id: str) -> FormsSection:
    """The chart's forms section: when forms opened it, or the forms outage."""
    try:
        chart = await section(
            request.app[BACKENDS].forms.GetChart(
                forms_pb2.GetChartRequest(patient_id=patient_id),
                metadata=auth.metadata(request, caller),
            )
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return FormsSection(opened="")
        raise
    if isinstance(chart, Outage):
        return FormsSection(opened="", unavailable=chart.message)
    zone = request.app[SETTINGS].clinic_timezone
    return FormsSection(opened=format_when(when(chart.created_at), zone))
