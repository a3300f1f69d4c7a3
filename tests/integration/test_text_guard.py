"""The real identity service refuses bad text itself: INVALID_ARGUMENT naming the field, never
INTERNAL, and nothing stored (issue 6, item 2). Real gRPC, real PostgreSQL."""

from __future__ import annotations

import grpc
import pytest

from portal.identity.v1 import identity_pb2 as pb
from services.runtime.errors import field_errors
from services.runtime.text import CONTROL_MESSAGE
from tests.integration.test_identity import FRONT_DESK, GATEWAY, Identity
from tests.integration.test_identity import identity as identity  # the fixture

REGISTER = "/portal.identity.v1.IdentityService/RegisterPatient"


def _patient(first_name: str) -> pb.RegisterPatientRequest:
    return pb.RegisterPatientRequest(
        fields=pb.PatientFields(
            first_name=first_name, last_name="Lovelace", date_of_birth="1985-12-10", sex="female"
        ),
        confirm_duplicate=True,
    )


async def _stored(identity: Identity) -> int:
    return int(await identity.pool.fetchval("SELECT count(*) FROM patients"))


# NUL is what PostgreSQL cannot store (it used to answer INTERNAL); the others it would store.
@pytest.mark.parametrize("bad", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\n"])
async def test_a_control_character_in_a_name_is_invalid_argument_and_nothing_is_stored(
    identity: Identity, bad: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.RegisterPatient(_patient(f"Ada{bad}"), metadata=identity.md(FRONT_DESK))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(refused.value) == {"fields.first_name": [CONTROL_MESSAGE]}
    assert await _stored(identity) == 0


async def test_free_text_keeps_newlines_and_names_are_stored_in_nfc(identity: Identity) -> None:
    request = _patient("Zoe\u0308")  # "e" and a combining diaeresis
    request.fields.address = "1 Main Street\r\nLondon N1"  # free text: a browser's CRLF
    reply = await identity.stub.RegisterPatient(request, metadata=identity.md(FRONT_DESK))
    row = await identity.pool.fetchrow(
        "SELECT first_name, address FROM patients WHERE id = $1::uuid", reply.patient.id
    )
    assert row is not None
    assert (row["first_name"], row["address"]) == ("Zoë", "1 Main Street\nLondon N1")


async def test_passwords_and_search_text_are_checked_too(identity: Identity) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.StaffSignIn(
            pb.SignInRequest(username="admin", password="pass\x00word-long-enough"),
            metadata=identity.md(GATEWAY),
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_errors(refused.value) == {"password": [CONTROL_MESSAGE]}
    assert "pass" not in (refused.value.details() or "")  # the value is never echoed
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await identity.stub.SearchPatients(
            pb.SearchPatientsRequest(query="Ada\x00", limit=5), metadata=identity.md(FRONT_DESK)
        )
    assert field_errors(refused.value) == {"query": [CONTROL_MESSAGE]}


async def test_a_lone_surrogate_cannot_be_sent_and_bad_utf8_is_not_internal(
    identity: Identity,
) -> None:
    # Python's protobuf refuses to put a lone surrogate into a string field at all ...
    with pytest.raises(UnicodeEncodeError):
        _patient("Ada\ud800")
    # ... so send the bytes a careless client in another language might: the surrogate encoded
    # as if it were a character (ED A0 80), which is not UTF-8. gRPC cannot decode the request,
    # so no handler runs; grpc.aio answers UNKNOWN for that (not INTERNAL), and nothing is stored.
    first_name = b"Ad\xed\xa0\x80"
    fields = b"\x0a" + bytes([len(first_name)]) + first_name  # PatientFields.first_name = 1
    raw = b"\x0a" + bytes([len(fields)]) + fields  # RegisterPatientRequest.fields = 1
    call = identity.channel.unary_unary(REGISTER, None, None)  # bytes in, bytes out
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(raw, metadata=identity.md(FRONT_DESK))
    assert refused.value.code() == grpc.StatusCode.UNKNOWN
    assert "bad UTF-8" in (refused.value.details() or "")
    assert await _stored(identity) == 0
