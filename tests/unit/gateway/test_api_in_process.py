"""The gateway in process over a stub identity: validation, 405/415, query parameters, error
mapping, rate limiting and CSRF, in milliseconds (tests/system covers the real stack)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from portal.identity.v1 import identity_pb2 as pb
from services.gateway import api
from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.conftest import TEST_GATEWAY_ENV
from tests.unit.gateway.stubs import (
    PATIENT_ID,
    PATIENT_TOKEN,
    PENDING_TOKEN,
    STAFF_TOKEN,
    Identity,
    StubBackends,
    failed_precondition,
    invalid_argument,
    rpc_error,
)

STAFF = {"Authorization": f"Bearer {STAFF_TOKEN}"}
NEW = {"first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1980-03-04", "sex": "female"}
PATIENT = pb.Patient(id=PATIENT_ID, first_name="Ada", last_name="Lovelace", sex="female")


def make_app(rate: int = 20) -> tuple[web.Application, StubBackends]:
    settings = GatewaySettings.from_env(
        {**TEST_GATEWAY_ENV, "PORTAL_LOGIN_RATE_PER_MINUTE": str(rate)}
    )
    backends = StubBackends()
    return create_app(settings, backends=backends.as_backends()), backends


@pytest.fixture
async def stub() -> AsyncIterator[tuple[TestClient[Any, Any], Identity]]:
    app, backends = make_app()
    async with TestClient(TestServer(app)) as client:
        yield client, backends.identity


async def problem(reply: Any, status: int) -> dict[str, Any]:
    assert reply.status == status, await reply.text()
    assert reply.content_type == "application/problem+json"
    body: dict[str, Any] = await reply.json(content_type=None)
    assert body["status"] == status
    return body


# --- Request bodies -----------------------------------------------------------------------------


async def test_wrong_types_unknown_and_missing_members_are_named(stub) -> None:
    client, identity = stub
    reply = await client.post(
        "/api/v1/patients",
        json={"first_name": 7, "last_name": "Doe", "date_of_birth": "1980-01-01", "colour": "x"},
        headers=STAFF,
    )
    body = await problem(reply, 400)
    assert body["errors"] == {
        "first_name": ["Must be a string."],
        "sex": ["This field is required."],
        "colour": ["Unknown field."],
    }
    # Strict: a JSON string "true" is not a boolean.
    reply = await client.post(
        "/api/v1/patients", json={**NEW, "confirm_duplicate": "true"}, headers=STAFF
    )
    assert set((await problem(reply, 400))["errors"]) == {"confirm_duplicate"}
    assert identity.sent("RegisterPatient") == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("first_name", "Ada\x00"),
        ("first_name", "Ada\ud800"),
        ("last_name", "Love\x1blace"),
        ("last_name", "Love\nlace"),
        ("first_name", "   "),
        ("address", "Main St\x00"),
        ("date_of_birth", "1980-02-30"),
        ("date_of_birth", "2999-01-01"),
        ("email", "not-an-address"),
    ],
)
async def test_bad_text_is_400_naming_the_field_and_never_reaches_identity(
    stub, name: str, value: str
) -> None:
    client, identity = stub
    reply = await client.post("/api/v1/patients", json={**NEW, name: value}, headers=STAFF)
    body = await problem(reply, 400)
    assert list(body["errors"]) == [name]
    assert identity.sent("RegisterPatient") == []


async def test_text_reaches_identity_nfc_normalised(stub) -> None:
    client, identity = stub
    identity.replies["RegisterPatient"] = pb.RegisterPatientResponse(patient=PATIENT)
    reply = await client.post(
        "/api/v1/patients",
        json={**NEW, "first_name": "Zoe\u0308", "address": "1 Main St\r\nSpringfield\tUSA"},
        headers=STAFF,
    )
    assert reply.status == 201, await reply.text()
    assert reply.headers["Location"] == f"/api/v1/patients/{PATIENT_ID}"
    (sent,) = identity.sent("RegisterPatient")
    assert sent.fields.first_name == "Zoë"
    assert sent.fields.address == "1 Main St\nSpringfield\tUSA"


@pytest.mark.parametrize(
    "data", ["{not json", "[1, 2]", '"text"', "null", "1e999999", "[" * 100_000]
)
async def test_malformed_bodies_are_400(stub, data: str) -> None:
    client, _ = stub
    reply = await client.post(
        "/api/v1/patients",
        data=data,
        headers={**STAFF, "Content-Type": "application/json"},
    )
    body = await problem(reply, 400)
    assert body["detail"] and "Traceback" not in str(body)


async def test_a_body_that_is_not_json_is_415(stub) -> None:
    client, _ = stub
    reply = await client.post(
        "/api/v1/patients", data="first_name=A", headers={**STAFF, "Content-Type": "text/plain"}
    )
    await problem(reply, 415)


async def test_patch_sends_only_what_was_sent_and_needs_something(stub) -> None:
    client, identity = stub
    identity.replies["UpdatePatient"] = PATIENT
    path = f"/api/v1/patients/{PATIENT_ID}"
    await problem(await client.patch(path, json={}, headers=STAFF), 400)
    reply = await client.patch(path, json={"phone": "555-0100", "allow_sms": True}, headers=STAFF)
    assert reply.status == 200, await reply.text()
    (sent,) = identity.sent("UpdatePatient")
    assert list(sent.update_mask) == ["allow_sms", "phone"]
    assert sent.fields.phone == "555-0100" and sent.allow_sms is True
    await problem(await client.get("/api/v1/patients/not-an-id", headers=STAFF), 404)


# --- Query parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["", "lots", "0", "101", "5.0", "-1", "1_0"])
async def test_bad_limits_are_400(stub, limit: str) -> None:
    client, identity = stub
    reply = await client.get(f"/api/v1/patients?q=a&limit={limit}", headers=STAFF)
    assert list((await problem(reply, 400))["errors"]) == ["limit"]
    assert identity.sent("SearchPatients") == []


async def test_a_good_limit_reaches_identity(stub) -> None:
    client, identity = stub
    identity.replies["SearchPatients"] = pb.SearchPatientsResponse()
    reply = await client.get("/api/v1/patients?q=%20Ada%20&limit=5", headers=STAFF)
    assert reply.status == 200 and await reply.json() == {"items": []}
    (sent,) = identity.sent("SearchPatients")
    assert (sent.query, sent.limit) == ("Ada", 5)


# --- Methods ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("TRACE", "/api/v1/patients", {"GET", "POST"}),
        ("PUT", "/api/v1/portal/me", {"GET"}),
        ("DELETE", "/api/v1/openapi.json", {"GET"}),
        ("GET", "/api/v1/staff/sessions", {"POST"}),
    ],
)
async def test_undeclared_methods_are_405_with_allow(
    stub, method: str, path: str, allowed: set[str]
) -> None:
    client, _ = stub
    reply = await client.request(method, path, headers=STAFF)
    await problem(reply, 405)
    assert set(re.split(r",\s*", reply.headers["Allow"])) == allowed


async def test_pages_answer_405_with_allow_too(stub) -> None:
    client, _ = stub
    reply = await client.request("TRACE", "/")
    assert reply.status == 405
    assert "GET" in reply.headers["Allow"]


# --- Who calls ----------------------------------------------------------------------------------


async def test_tokens_of_the_wrong_kind_are_401_with_www_authenticate(stub) -> None:
    client, _ = stub
    for token in (None, "nonsense", PATIENT_TOKEN):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = await client.get(f"/api/v1/patients/{PATIENT_ID}", headers=headers)
        await problem(reply, 401)
        assert reply.headers["WWW-Authenticate"] == "Bearer"
    reply = await client.get("/api/v1/portal/me", headers=STAFF)
    await problem(reply, 401)


async def test_a_pending_password_change_is_403_except_for_the_change(stub) -> None:
    client, identity = stub
    pending = {"Authorization": f"Bearer {PENDING_TOKEN}"}
    body = await problem(await client.get("/api/v1/portal/me", headers=pending), 403)
    assert body["code"] == "PASSWORD_CHANGE_REQUIRED"
    identity.replies["ChangePassword"] = pb.SessionGrant(token="fresh", session=pb.Session())
    reply = await client.post(
        "/api/v1/portal/password",
        json={"current_password": "old-one", "new_password": "Juniper-Kettle-42"},
        headers=pending,
    )
    assert reply.status == 204 and reply.headers["X-Session-Token"] == "fresh"


# --- Errors from identity -----------------------------------------------------------------------


async def test_a_failed_precondition_is_409_with_identitys_description_and_type(stub) -> None:
    client, identity = stub
    identity.replies["RegisterPatient"] = await failed_precondition(
        "DUPLICATE_PATIENT", "Such a patient exists; check, then confirm."
    )
    body = await problem(await client.post("/api/v1/patients", json=NEW, headers=STAFF), 409)
    assert body["code"] == "DUPLICATE_PATIENT"
    assert body["detail"] == "Such a patient exists; check, then confirm."


async def test_invalid_argument_is_400_with_identitys_field_messages(stub) -> None:
    client, identity = stub
    identity.replies["RegisterPatient"] = await invalid_argument({"sex": ["Sex is odd."]})
    body = await problem(await client.post("/api/v1/patients", json=NEW, headers=STAFF), 400)
    assert body["errors"] == {"sex": ["Sex is odd."]}


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 503),
        (grpc.StatusCode.INTERNAL, 500),
    ],
)
async def test_other_backend_errors_are_clean_problems(
    stub, code: grpc.StatusCode, status: int
) -> None:
    client, identity = stub
    identity.replies["GetPatient"] = rpc_error(code, "secret internals")
    body = await problem(await client.get(f"/api/v1/patients/{PATIENT_ID}", headers=STAFF), status)
    if status >= 500:
        assert "secret" not in str(body)


async def test_an_identity_outage_while_resolving_the_session_is_503(stub) -> None:
    client, identity = stub
    identity.replies["ResolveSession"] = rpc_error(grpc.StatusCode.UNAVAILABLE)
    await problem(await client.get("/api/v1/portal/me", headers=STAFF), 503)


# --- Sign-in rate limit -------------------------------------------------------------------------


async def test_sign_ins_beyond_the_rate_are_429_with_retry_after() -> None:
    app, backends = make_app(rate=3)
    backends.identity.replies["StaffSignIn"] = rpc_error(grpc.StatusCode.UNAUTHENTICATED)
    backends.identity.replies["PatientSignIn"] = rpc_error(grpc.StatusCode.UNAUTHENTICATED)
    async with TestClient(TestServer(app)) as client:
        statuses = []
        for path in ["/api/v1/staff/sessions", "/api/v1/portal/onsite/sessions"] * 3:
            reply = await client.post(path, json={"username": "nobody", "password": "wrong"})
            statuses.append(reply.status)
        assert statuses == [401, 401, 401, 429, 429, 429]
        assert int(reply.headers["Retry-After"]) >= 1
        await problem(reply, 429)


# --- CSRF on pages ------------------------------------------------------------------------------


async def test_a_page_form_without_its_csrf_token_is_403(stub) -> None:
    client, _ = stub
    reply = await client.post("/staff/login", data={"username": "admin", "password": "x"})
    assert reply.status == 403
    assert "text/html" in reply.headers["Content-Type"]


# --- The document -------------------------------------------------------------------------------

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def test_every_api_route_is_documented_and_every_operation_routed() -> None:
    app, _ = make_app()
    routed = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical.startswith("/api/")
    }
    document = api.document(app)
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    assert routed == documented
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if operation.get("security") != []:
                assert "401" in operation["responses"], (method, path)
            if "requestBody" in operation:
                assert {"400", "415"} <= set(operation["responses"]), (method, path)


def test_the_two_sign_ins_document_their_own_models() -> None:
    app, _ = make_app()
    paths = api.document(app)["paths"]
    staff = paths["/api/v1/staff/sessions"]["post"]["requestBody"]["content"]
    patient = paths["/api/v1/portal/{realm}/sessions"]["post"]["requestBody"]["content"]
    assert staff["application/json"]["schema"]["$ref"].endswith("/StaffSignIn")
    assert patient["application/json"]["schema"]["$ref"].endswith("/PatientSignIn")
