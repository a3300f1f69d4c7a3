"""The JSON API under /api/v1: Bearer tokens in, JSON or problem+json out.

Modules: staff (staff sessions), patients (the registry), credentials (portal credentials),
portal (the patient's own routes); each declares its operations (operation.py) with the models
of their bodies (models.py, fields.py). openapi builds the document from those declarations;
access says who calls, json_io turns errors into problems, serialize builds the answers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.gateway.api import (
    audit,
    credentials,
    forms,
    mfa,
    openapi,
    patients,
    portal,
    records,
    scheduling,
    scheduling_portal,
    staff,
    staff_users,
    work_queue,
)
from services.gateway.api.models import Document
from services.gateway.api.operation import Answer, Call, Operation, Reply

DOCUMENT = web.AppKey("openapi_document", Document)


def operations() -> list[Operation]:
    """Every operation of /api/v1, the document's own included."""
    modules = (
        staff,
        staff_users,
        patients,
        credentials,
        portal,
        scheduling,
        scheduling_portal,
        forms,
        records,
        work_queue,
        audit,
        mfa,
    )
    found = [op for module in modules for op in module.operations()]
    found.append(
        Operation(
            "GET",
            "/api/v1/openapi.json",
            _document,
            operation_id="getOpenApi",
            summary="This document",
            tag="meta",
            security="none",
            backend=False,
            answers=(Answer(200, "The OpenAPI 3.1 document.", Document),),
        )
    )
    return found


async def _document(call: Call[None, None]) -> Reply:
    return Reply(call.request.app[DOCUMENT])


def document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI document the app serves."""
    return app[DOCUMENT].model_dump()


def setup(app: web.Application) -> None:
    """Register the API's routes and build its document (once, when the app is made)."""
    declared = operations()
    app[DOCUMENT] = Document.model_validate(openapi.build(declared))
    app.router.add_routes([op.route() for op in declared])
