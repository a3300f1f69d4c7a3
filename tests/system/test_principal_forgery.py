"""Principals only the gateway can sign, against the running services (real processes).

Each gRPC service of the stack is called directly, as a compromised process inside the cluster
would call it: a principal signed with the gateway's key is admitted; an HS256 token keyed with
the gateway's public key (algorithm confusion), a token signed by another Ed25519 key under the
gateway's key id, and an unsigned one are all UNAUTHENTICATED. No service process holds a
private key (or the gateway's secret) to sign one with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from portal.forms.v1 import forms_pb2, forms_pb2_grpc
from portal.identity.v1 import identity_pb2, identity_pb2_grpc
from portal.scheduling.v1 import scheduling_pb2, scheduling_pb2_grpc
from services.runtime.principal import METADATA_KEY, Principal
from tests.conftest import TEST_PRINCIPAL_PUBLIC_KEY, principal_signer
from tests.system.conftest import RunningStack

pytestmark = pytest.mark.system

ADMIN = Principal(kind="staff", subject="00000000-0000-4000-8000-000000000001", role="admin")
Metadata = tuple[tuple[str, str], ...]
Call = Callable[[grpc.aio.Channel, Metadata], Awaitable[Any]]


def claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "kind": "staff",
        "subject": ADMIN.subject,
        "role": "admin",
        "iat": now,
        "exp": now + 60,
        "aud": "portal-services",
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jws(header: dict[str, str], signer: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims()).encode())}"
    return f"{signing_input}.{_b64(signer(signing_input.encode()))}"


def forged_tokens() -> dict[str, str]:
    kid = principal_signer().kid
    public = TEST_PRINCIPAL_PUBLIC_KEY.encode()
    return {
        "hs256 keyed with the public key": _jws(
            {"alg": "HS256", "typ": "JWT", "kid": kid},
            lambda data: hmac.new(public, data, hashlib.sha256).digest(),
        ),
        "another ed25519 key": jwt.encode(
            claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}
        ),
        "unsigned": _jws({"alg": "none", "typ": "JWT", "kid": kid}, lambda data: b""),
    }


async def identity_call(channel: grpc.aio.Channel, md: Metadata) -> Any:
    stub = identity_pb2_grpc.IdentityServiceStub(channel)
    return await stub.ListStaffUsers(identity_pb2.ListStaffUsersRequest(), metadata=md)


async def forms_call(channel: grpc.aio.Channel, md: Metadata) -> Any:
    stub = forms_pb2_grpc.FormsServiceStub(channel)
    return await stub.ListForms(forms_pb2.ListFormsRequest(), metadata=md)


async def scheduling_call(channel: grpc.aio.Channel, md: Metadata) -> Any:
    stub = scheduling_pb2_grpc.SchedulingServiceStub(channel)
    return await stub.ListProviders(scheduling_pb2.ListProvidersRequest(), metadata=md)


CALLS: dict[str, Call] = {
    "identity": identity_call,
    "forms": forms_call,
    "scheduling": scheduling_call,
}


@pytest.mark.parametrize("service", sorted(CALLS))
async def test_only_the_gateways_key_signs_a_principal(stack: RunningStack, service: str) -> None:
    port = stack.stack.config.service_ports[service]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = CALLS[service]
        await call(channel, principal_signer().metadata(ADMIN))  # the real one is admitted
        for name, token in forged_tokens().items():
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(channel, ((METADATA_KEY, token),))
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, name


@pytest.mark.parametrize("service", sorted(CALLS))
def test_no_service_process_holds_a_signing_secret(stack: RunningStack, service: str) -> None:
    """What the running process was started with (its /proc environ): public keys only."""
    pid = stack.stack.children[service].pid
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    environ = dict(item.decode().partition("=")[::2] for item in raw if item)
    assert "PRIVATE KEY" not in "\n".join(environ.values())
    assert not {"PORTAL_PRINCIPAL_PRIVATE_KEY", "PORTAL_GATEWAY_SECRET"} & set(environ)
    assert "PUBLIC KEY" in environ["PORTAL_PRINCIPAL_PUBLIC_KEYS"]
    gateway = stack.stack.children["gateway"].pid
    assert "PRIVATE KEY" in Path(f"/proc/{gateway}/environ").read_text(errors="replace")
