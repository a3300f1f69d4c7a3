"""FormsService, eSignature part: disclosure, signing, verification and the certificate."""

from __future__ import annotations

import asyncio

import asyncpg

from portal.forms.v1 import forms_pb2 as pb
from services.forms import answers, catalog, certificate, chart_forms, convert, events, signatures
from services.forms.chart_forms import answers_of
from services.forms.rpc_chart_forms import ChartFormRpc
from services.forms.rpc_common import STAFF, Context
from services.runtime.db import Conn
from services.runtime.errors import abort_invalid, abort_precondition, bad_request
from services.runtime.fonts import FontsMissing
from services.runtime.principal import Principal, requires

# Signing needs every shown agreement question answered Yes (definitions.Item.agreement).
CONSENT_DECLINED = "To sign this consent form, agree to it; if you do not agree, tell the clinic."


class SignatureRpc(ChartFormRpc):
    @requires(staff=STAFF, patient=True)
    async def GetSignatureDisclosure(
        self, request: pb.GetSignatureDisclosureRequest, context: Context, principal: Principal
    ) -> pb.SignatureDisclosure:
        async with self.pool.acquire() as conn:
            row = await signatures.current_disclosure(conn)
        return pb.SignatureDisclosure(version=row["version"], text=row["text"])

    @requires(patient=True)
    async def SignChartForm(
        self, request: pb.SignChartFormRequest, context: Context, principal: Principal
    ) -> pb.Signature:
        typed_name, errors = signatures.check(
            signatures.Request(
                request.typed_name,
                request.agree_to_electronic_signature,
                request.drawn_signature_png,
            )
        )
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self.chart_form(conn, context, principal, request.chart_form_id, lock=True)
            await self.editable(context, row)
            if errors:  # with the unanswered questions too: everything to fix, in page order
                *_, problems = await self.answer_problems(conn, row)
                await abort_invalid(context, {**problems, **errors})
            disclosure = await signatures.current_disclosure(conn)
            if request.disclosure_version not in (0, disclosure["version"]):
                await abort_precondition(
                    context,
                    "DISCLOSURE_CHANGED",
                    "The disclosure about electronic signatures has changed; read it again.",
                )
            items, final = await self.finished_answers(conn, context, row)
            declined = answers.declined(items, final)
            if declined:
                await abort_precondition(
                    context,
                    "CONSENT_DECLINED",
                    CONSENT_DECLINED,
                    "",
                    bad_request({link_id: [CONSENT_DECLINED] for link_id in declined}),
                )
            signed = await chart_forms.complete(conn, row["id"], final, "signed")
            record = await signatures.insert(
                conn,
                signed,
                signer_kind=principal.kind,
                signer_id=principal.subject,
                typed_name=typed_name,
                source_address=principal.source,
                user_agent=request.user_agent,
                disclosure_version=disclosure["version"],
                png=request.drawn_signature_png,
            )
            await self.audit(
                conn,
                principal,
                "chart_form.signed",
                row,
                user_agent=request.user_agent,
                detail=f"document_sha256={record['document_sha256']}",
            )
            await events.chart_form(conn, "signed", signed, row["kind"], principal.subject)
        return convert.signature(record)

    @requires(staff=STAFF, patient=True)
    async def VerifySignature(
        self, request: pb.VerifySignatureRequest, context: Context, principal: Principal
    ) -> pb.Verification:
        async with self.pool.acquire() as conn:
            row, signature = await self._signed(conn, context, principal, request.chart_form_id)
            result = signatures.verify(row, signature)
            await self.audit(
                conn, principal, "chart_form.verified", row, detail=f"valid={result.valid}"
            )
        return pb.Verification(
            valid=result.valid,
            document_sha256=result.recorded,
            recomputed_sha256=result.recomputed,
            drawn_signature_valid=result.image_valid,
        )

    @requires(staff=STAFF, patient=True)
    async def GetSignatureCertificate(
        self, request: pb.GetSignatureCertificateRequest, context: Context, principal: Principal
    ) -> pb.Certificate:
        async with self.pool.acquire() as conn:
            row, signature = await self._signed(conn, context, principal, request.chart_form_id)
            await self.audit(conn, principal, "chart_form.certificate", row)
            form = await catalog.get_form(conn, row["form_id"], row["form_version"])
            if form is None:
                raise LookupError(row["form_id"])
            trail = await chart_forms.history(conn, row["id"])
        facts = certificate.SignatureFacts(
            chart_form_id=str(row["id"]),
            form_id=str(signature["form_id"]),
            form_version=signature["form_version"],
            signer=certificate.signer_text(signature["signer_kind"]),
            typed_name=signature["typed_name"],
            signed_at=signature["signed_at"],
            source_address=signature["source_address"],
            user_agent=signature["user_agent"],
            disclosure_version=signature["disclosure_version"],
            document_sha256=signature["document_sha256"],
            drawn_signature_sha256=signature["drawn_signature_sha256"],
            valid_now=signatures.verify(row, signature).valid,
        )
        entries = [
            certificate.TrailEntry(
                e["at"],
                e["action"],
                certificate.actor_text(e["actor_kind"], e["actor_id"]),
                e["source_address"],
            )
            for e in trail
        ]
        try:
            pdf = await asyncio.to_thread(
                certificate.render, catalog.definition(form), answers_of(row), facts, entries
            )
        except FontsMissing as missing:
            await abort_precondition(context, "FONTS_MISSING", str(missing))
        return pb.Certificate(pdf=pdf, filename=f"signature-certificate-{row['id']}.pdf")

    async def _signed(
        self, conn: Conn, context: Context, principal: Principal, raw_id: str
    ) -> tuple[asyncpg.Record, asyncpg.Record]:
        row = await self.chart_form(conn, context, principal, raw_id)
        signature = await signatures.get(conn, row["id"])
        if signature is None:
            await abort_precondition(context, "NOT_SIGNED", "This form has not been signed.")
        return row, signature
