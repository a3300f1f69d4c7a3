"""FormsService, library part: forms, versions, FHIR import/export, portal catalog, visit forms."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from portal.forms.v1 import forms_pb2 as pb
from services.forms import access, catalog, convert, events, fhir
from services.forms.definitions import Definition, validate
from services.forms.rpc_common import CATALOG_EDITORS, STAFF, Context, ServicerBase, parse_id
from services.runtime.errors import abort_invalid, abort_not_found
from services.runtime.principal import Principal, requires

MAX_IMPORT_BYTES = 2 * 1024 * 1024


class CatalogRpc(ServicerBase):
    @requires(staff=STAFF)
    async def ListForms(
        self, request: pb.ListFormsRequest, context: Context, principal: Principal
    ) -> pb.ListFormsResponse:
        async with self.pool.acquire() as conn:
            rows = await catalog.list_forms(conn, convert.KIND_NAMES.get(request.kind, ""))
        return pb.ListFormsResponse(items=[convert.form_summary(r) for r in rows])

    @requires(staff=STAFF)
    async def GetForm(
        self, request: pb.GetFormRequest, context: Context, principal: Principal
    ) -> pb.Form:
        form_id = await parse_id(context, request.form_id, "form_id")
        async with self.pool.acquire() as conn:
            row = await catalog.get_form(conn, form_id, request.version)
        if row is None:
            await abort_not_found(context, "form")
        return convert.form(row)

    @requires(staff=CATALOG_EDITORS)
    async def CreateForm(
        self, request: pb.CreateFormRequest, context: Context, principal: Principal
    ) -> pb.Form:
        return await self._create(context, principal, convert.definition_in(request.definition))

    async def _create(self, context: Context, principal: Principal, given: Definition) -> pb.Form:
        definition, errors = validate(given)
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn:
            form_id = await catalog.create_form(conn, definition, access.actor(principal))
            row = await catalog.get_form(conn, form_id)
        if row is None:
            raise LookupError(form_id)
        return convert.form(row)

    @requires(staff=CATALOG_EDITORS)
    async def UpdateForm(
        self, request: pb.UpdateFormRequest, context: Context, principal: Principal
    ) -> pb.Form:
        form_id = await parse_id(context, request.form_id, "form_id")
        definition, errors = validate(convert.definition_in(request.definition))
        if errors:
            await abort_invalid(context, errors)
        async with self.pool.acquire() as conn, conn.transaction():
            kinds = await catalog.existing(conn, [form_id])
            if form_id not in kinds:
                await abort_not_found(context, "form")
            if kinds[form_id] != definition.kind:
                await abort_invalid(context, {"kind": ["The kind of a form cannot change."]})
            version = await catalog.update_form(conn, form_id, definition, access.actor(principal))
            row = await catalog.get_form(conn, form_id, version)
        if row is None:
            raise LookupError(form_id)
        return convert.form(row)

    @requires(staff=CATALOG_EDITORS)
    async def ImportQuestionnaire(
        self, request: pb.ImportQuestionnaireRequest, context: Context, principal: Principal
    ) -> pb.Form:
        if len(request.questionnaire_json) > MAX_IMPORT_BYTES:
            await abort_invalid(context, {"questionnaire_json": ["The file is too large."]})
        try:
            resource = json.loads(request.questionnaire_json)
            definition = fhir.import_(resource, convert.KIND_NAMES.get(request.kind, "visit"))
        except (ValueError, RecursionError) as exc:
            message = str(exc) if isinstance(exc, fhir.FhirError) else "Not valid JSON."
            await abort_invalid(context, {"questionnaire_json": [message]})
        return await self._create(context, principal, definition)

    @requires(staff=STAFF)
    async def ExportQuestionnaire(
        self, request: pb.ExportQuestionnaireRequest, context: Context, principal: Principal
    ) -> pb.ExportQuestionnaireResponse:
        form_id = await parse_id(context, request.form_id, "form_id")
        async with self.pool.acquire() as conn:
            row = await catalog.get_form(conn, form_id, request.version)
        if row is None:
            await abort_not_found(context, "form")
        resource = fhir.export(str(row["id"]), row["version"], catalog.definition(row))
        return pb.ExportQuestionnaireResponse(
            questionnaire_json=json.dumps(resource, ensure_ascii=False, indent=2)
        )

    @requires(staff=CATALOG_EDITORS)
    async def SetPortalForms(
        self, request: pb.SetPortalFormsRequest, context: Context, principal: Principal
    ) -> pb.ListFormsResponse:
        form_ids = await self._form_ids(context, request.form_ids, "form_ids")
        async with self.pool.acquire() as conn, conn.transaction():
            kinds = await catalog.existing(conn, form_ids)
            unknown = [str(f) for f in form_ids if f not in kinds]
            if unknown:
                await abort_invalid(context, {"form_ids": [f"No such form: {', '.join(unknown)}."]})
            await catalog.lock_placement(conn)
            await catalog.set_portal_forms(conn, form_ids)
            await events.catalog_updated(conn, [str(f) for f in form_ids], principal.subject)
            # A consent form made available now reaches the charts that already have access.
            for row in await catalog.place_portal_consents(conn):
                await access.record_system(
                    conn, "chart_form.assigned", row["patient_id"], row["id"], "portal catalog"
                )
                await events.chart_form(conn, "assigned", row, "consent", principal.subject)
            rows = await catalog.list_forms(conn)
        return pb.ListFormsResponse(items=[convert.form_summary(r) for r in rows])

    @requires(staff=STAFF)
    async def GetVisitForms(
        self, request: pb.GetVisitFormsRequest, context: Context, principal: Principal
    ) -> pb.VisitForms:
        type_id = await parse_id(context, request.appointment_type_id, "appointment_type_id")
        async with self.pool.acquire() as conn:
            rows = await catalog.visit_forms(conn, type_id)
        return pb.VisitForms(
            appointment_type_id=str(type_id), forms=[convert.form_summary(r) for r in rows]
        )

    @requires(staff=CATALOG_EDITORS)
    async def SetVisitForms(
        self, request: pb.SetVisitFormsRequest, context: Context, principal: Principal
    ) -> pb.VisitForms:
        type_id = await parse_id(context, request.appointment_type_id, "appointment_type_id")
        form_ids = await self._form_ids(context, request.form_ids, "form_ids")
        async with self.pool.acquire() as conn:
            kinds = await catalog.existing(conn, form_ids)
            wrong = [str(f) for f in form_ids if kinds.get(f) not in ("visit", "appointment")]
            if wrong:
                await abort_invalid(
                    context, {"form_ids": [f"Not a visit form: {', '.join(wrong)}."]}
                )
            await catalog.set_visit_forms(conn, type_id, form_ids)
            rows = await catalog.visit_forms(conn, type_id)
        return pb.VisitForms(
            appointment_type_id=str(type_id), forms=[convert.form_summary(r) for r in rows]
        )

    async def _form_ids(self, context: Context, raw: Sequence[str], field: str) -> list[uuid.UUID]:
        ids = [await parse_id(context, value, field) for value in raw]
        if len(set(ids)) != len(ids):
            await abort_invalid(context, {field: ["A form is listed twice."]})
        return ids
