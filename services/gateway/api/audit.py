"""Audit log verification for administrators: is the hash chain of identity's audit log intact?"""

from __future__ import annotations

from pydantic import Field

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import auth
from services.gateway.api.models import Response
from services.gateway.api.operation import Answer, Call, Operation, Reply
from services.gateway.context import BACKENDS
from services.gateway.staff_roles import ADMIN


class AuditVerification(Response):
    """The audit log's hash chains (8 lanes), each walked in id order (README: Audit log)."""

    valid: bool = Field(description="Every row's hash and link to the previous row hold.")
    rows: int = Field(ge=0, description="Rows checked.")
    first_broken: int | None = Field(
        default=None,
        description="The id of the first row that fails (an edited row, or the row of its "
        "lane after a deleted one); absent when valid.",
    )


async def verification(call: Call[None, None]) -> Reply:
    result = await call.request.app[BACKENDS].identity.VerifyAuditLog(
        pb.VerifyAuditLogRequest(), metadata=auth.metadata(call.request, call.caller)
    )
    return Reply(
        AuditVerification(
            valid=result.valid, rows=result.rows, first_broken=result.first_broken or None
        )
    )


def operations() -> list[Operation]:
    return [
        Operation(
            "GET",
            "/api/v1/audit/verification",
            verification,
            operation_id="verifyAuditLog",
            summary="Verify the audit log's hash chain (administrators)",
            tag="audit",
            security="staff",
            answers=(Answer(200, "The chain was walked.", AuditVerification),),
            roles=ADMIN,
        ),
    ]
