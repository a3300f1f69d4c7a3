"""The forms service: wiring of its gRPC servicer, migrations, library and event subscriptions."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources

import grpc

from portal.forms.v1 import forms_pb2_grpc as pb_grpc
from services.forms import appointments, library
from services.forms.charts import SUBSCRIPTIONS
from services.forms.servicer import FormsServicer
from services.runtime.consumer import Subscription
from services.runtime.server import Runtime, ServiceSpec


def register(server: grpc.aio.Server, rt: Runtime) -> None:
    pb_grpc.add_FormsServiceServicer_to_server(FormsServicer(rt.pool, rt.principals), server)


def subscriptions(_rt: Runtime) -> list[Subscription]:
    return SUBSCRIPTIONS + appointments.subscriptions(appointments.scheduling_messages())


async def on_start(rt: Runtime) -> None:
    async with rt.pool.acquire() as conn:
        await library.seed(conn)


def build(env: Mapping[str, str]) -> ServiceSpec:
    """The service; it has no settings of its own beyond the runtime's."""
    return ServiceSpec(
        name="forms",
        grpc_service="portal.forms.v1.FormsService",
        stream="FORMS",
        migrations=resources.files(__package__) / "migrations",
        register=register,
        subscriptions=subscriptions,
        on_start=on_start,
    )
