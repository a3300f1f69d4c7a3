"""Sections of staff pages that come from forms or scheduling: each degrades on its own.

A page about a patient is identity's; a section another service fills shows that service's
outage in its place, and the rest of the page still renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo

import grpc
from aiohttp import web

from portal.forms.v1 import forms_pb2
from portal.scheduling.v1 import scheduling_pb2
from services.gateway import auth, form_view
from services.gateway.auth import Caller
from services.gateway.backends import Outage, section
from services.gateway.context import BACKENDS, SETTINGS
from services.gateway.schedule_view import AppointmentView, appointment_view
from services.gateway.staff.common import format_when, when


@dataclass(frozen=True)
class ChartFormRow:
    """One chart form as the chart's Forms card lists it."""

    href: str
    title: str
    kind: str
    status: str
    level: str  # badge colour
    due: str


def chart_form_row(item: forms_pb2.ChartFormSummary, zone: tzinfo) -> ChartFormRow:
    return ChartFormRow(
        href=f"/staff/patients/{item.patient_id}/forms/{item.id}",
        title=item.title,
        kind=form_view.kind_label(item.kind),
        status=form_view.status_label(item.status),
        level=form_view.status_level(item.status),
        due=format_when(when(item.due), zone),
    )


@dataclass(frozen=True)
class FormsSection:
    opened: str  # when forms opened the chart; "" while it has not yet (events are async)
    unavailable: str = ""  # the outage message that replaces the section
    items: list[ChartFormRow] = field(default_factory=list)  # the chart's forms


async def forms_section(request: web.Request, caller: Caller, patient_id: str) -> FormsSection:
    """The chart's forms section: when forms opened it and its forms, or the forms outage."""
    forms = request.app[BACKENDS].forms
    metadata = auth.metadata(request, caller)
    try:
        chart = await section(
            forms.GetChart(forms_pb2.GetChartRequest(patient_id=patient_id), metadata=metadata)
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            return FormsSection(opened="")
        raise
    if isinstance(chart, Outage):
        return FormsSection(opened="", unavailable=chart.message)
    listed = await section(
        forms.ListChartForms(
            forms_pb2.ListChartFormsRequest(patient_id=patient_id), metadata=metadata
        )
    )
    if isinstance(listed, Outage):
        return FormsSection(opened="", unavailable=listed.message)
    zone = request.app[SETTINGS].clinic_timezone
    return FormsSection(
        opened=format_when(when(chart.created_at), zone),
        items=[chart_form_row(item, zone) for item in listed.items],
    )


@dataclass(frozen=True)
class AppointmentsSection:
    upcoming: list[AppointmentView] = field(default_factory=list)
    past: list[AppointmentView] = field(default_factory=list)  # newest first, a few
    unavailable: str = ""  # the outage message that replaces the section


PAST_SHOWN = 5


async def appointments_section(
    request: web.Request, caller: Caller, patient_id: str
) -> AppointmentsSection:
    """The chart's Appointments section: upcoming ones and the latest past ones."""
    reply = await section(
        request.app[BACKENDS].scheduling.ListAppointments(
            scheduling_pb2.ListAppointmentsRequest(patient_id=patient_id),
            metadata=auth.metadata(request, caller),
        )
    )
    if isinstance(reply, Outage):
        return AppointmentsSection(unavailable=reply.message)
    zone = request.app[SETTINGS].clinic_timezone
    views = [appointment_view(a, zone) for a in reply.items]
    past = [a for a in reversed(views) if not a.upcoming]
    return AppointmentsSection([a for a in views if a.upcoming], past[:PAST_SHOWN])
