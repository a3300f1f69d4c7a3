"""Only the gateway can sign a principal: Ed25519 with key ids, and keys that rotate."""

from __future__ import annotations

import base64
import hmac
import json
import time
from dataclasses import fields
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.gateway.settings import GatewaySettings
from services.runtime import principal as principal_module
from services.runtime.principal import InvalidPrincipal, Principal, PrincipalSigner
from services.runtime.principal import PrincipalVerifier as Verifier
from services.runtime.principal_keys import (
    BadKey,
    SigningKey,
    generate,
    key_id,
    load_public_keys,
    load_signing_key,
    public_pem,
)
from services.runtime.settings import ConfigError, ServiceSettings
from tests.conftest import (
    TEST_GATEWAY_ENV,
    TEST_PRINCIPAL_PRIVATE_KEY,
    TEST_PRINCIPAL_PUBLIC_KEY,
    TEST_SERVICE_ENV,
)

ADMIN = Principal(kind="staff", subject="00000000-0000-0000-0000-0000000000aa", role="admin")


def new_key() -> SigningKey:
    return load_signing_key(generate()[0])


def verifier(*keys: SigningKey) -> Verifier:
    return Verifier({key.kid: key.public for key in keys})


def claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"kind": "staff", "subject": ADMIN.subject, "role": "admin", "iat": now,
            "exp": now + 60, "aud": "portal-services", **extra}  # fmt: skip


def test_the_gateway_signs_with_eddsa_and_names_its_key() -> None:
    key = new_key()
    token = PrincipalSigner(key).encode(ADMIN)
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": key.kid, "typ": "JWT"}
    assert verifier(key).decode(token) == ADMIN


def test_during_a_rotation_both_keys_are_accepted_and_no_other() -> None:
    old, new, stranger = new_key(), new_key(), new_key()
    both = verifier(old, new)
    assert both.decode(PrincipalSigner(old).encode(ADMIN)) == ADMIN
    assert both.decode(PrincipalSigner(new).encode(ADMIN)) == ADMIN
    with pytest.raises(InvalidPrincipal, match="unknown key"):
        both.decode(PrincipalSigner(stranger).encode(ADMIN))
    # After the rotation the old key is removed, and its tokens are refused.
    with pytest.raises(InvalidPrincipal, match="unknown key"):
        verifier(new).decode(PrincipalSigner(old).encode(ADMIN))


def test_a_key_id_does_not_lend_its_trust_to_another_key() -> None:
    trusted, stranger = new_key(), new_key()
    token = jwt.encode(claims(), stranger.private, algorithm="EdDSA", headers={"kid": trusted.kid})
    with pytest.raises(InvalidPrincipal, match="Signature verification failed"):
        verifier(trusted).decode(token)


def hs256(payload: dict[str, object], secret: bytes, kid: str) -> str:
    """An HS256 token made by hand (PyJWT refuses a PEM text as an HMAC key, an attacker not)."""

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signed = part(json.dumps(header).encode()) + b"." + part(json.dumps(payload).encode())
    return (signed + b"." + part(hmac.digest(secret, signed, "sha256"))).decode()


def test_hmac_tokens_are_refused_whatever_their_secret() -> None:
    # "alg" confusion: an HS256 token keyed with the public key (all a service holds) or with
    # any shared value, under a trusted key id.
    key = new_key()
    for secret in (public_pem(key.public).encode(), b"a shared value every process knows"):
        with pytest.raises(InvalidPrincipal, match="alg value is not allowed"):
            verifier(key).decode(hs256(claims(), secret, key.kid))
    unsigned = jwt.encode(claims(), "", algorithm="none", headers={"kid": key.kid})
    with pytest.raises(InvalidPrincipal, match="alg value is not allowed"):
        verifier(key).decode(unsigned)


def test_expired_wrong_audience_unknown_kind_and_garbage_are_refused() -> None:
    key = new_key()

    def sign(**extra: object) -> str:
        return jwt.encode(claims(**extra), key.private, algorithm="EdDSA", headers={"kid": key.kid})

    for token, reason in [
        (sign(exp=int(time.time()) - 1), "expired"),
        (sign(aud="somewhere-else"), "Audience"),
        (sign(kind="robot"), "unknown principal kind"),
        ("not.a.token", "Invalid"),
        (jwt.encode(claims(), key.private, algorithm="EdDSA"), "unknown key"),  # no kid
    ]:
        with pytest.raises(InvalidPrincipal, match=reason):
            verifier(key).decode(token)


class Clock:
    """time.time() of services.runtime.principal, moved by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = time.time()
        monkeypatch.setattr(principal_module, "time", self)

    def time(self) -> float:
        return self.now


def test_a_signed_token_is_reused_for_half_its_life_then_signed_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    signer = PrincipalSigner(new_key(), ttl=120)
    first = signer.encode(ADMIN)
    clock.now += 59
    assert signer.encode(ADMIN) == first
    other = Principal(kind="staff", subject=ADMIN.subject, role="front_desk")
    assert signer.encode(other) != first  # another role is another principal
    clock.now += 2
    renewed = signer.encode(ADMIN)
    assert renewed != first
    claims = jwt.decode(renewed, options={"verify_signature": False})
    assert claims["exp"] - int(clock.now) == 120


def test_a_verified_token_is_remembered_until_its_expiry_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    key = new_key()
    check = verifier(key)
    token = PrincipalSigner(key, ttl=60).encode(ADMIN)
    verified: list[str] = []
    full_check = check._verify

    def counted(token: str) -> tuple[Principal, int]:
        verified.append(token)
        return full_check(token)

    monkeypatch.setattr(check, "_verify", counted)
    assert check.decode(token) == ADMIN
    clock.now += 59
    assert check.decode(token) == ADMIN
    assert verified == [token]  # remembered
    clock.now += 2
    assert check.decode(token) == ADMIN  # (PyJWT's own clock did not move)
    assert verified == [token, token]  # past its exp the token is checked in full again
    # A forged variant of a remembered token is no hit: it is verified, and refused.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidPrincipal):
        check.decode(forged)


def test_a_service_holds_no_private_key_and_cannot_sign() -> None:
    # Even when a private key is in its environment by mistake, a service reads only public ones.
    env = {**TEST_SERVICE_ENV, **TEST_GATEWAY_ENV}
    settings = ServiceSettings.from_env("forms", env)
    assert set(settings.principal_public_keys) == {
        key_id(load_signing_key(TEST_PRINCIPAL_PRIVATE_KEY).public)
    }
    values = [getattr(settings, f.name) for f in fields(settings)]
    assert not any(isinstance(v, SigningKey) for v in values)
    assert all(isinstance(k, Ed25519PublicKey) for k in settings.principal_public_keys.values())
    assert "PRIVATE KEY" not in repr(settings)
    verifier_ = Verifier(settings.principal_public_keys)
    assert not hasattr(verifier_, "encode") and not hasattr(verifier_, "metadata")


def test_the_shared_key_of_earlier_versions_is_refused_with_what_replaced_it() -> None:
    with pytest.raises(ConfigError, match="PORTAL_PRINCIPAL_KEY is no longer used"):
        ServiceSettings.from_env("forms", {**TEST_SERVICE_ENV, "PORTAL_PRINCIPAL_KEY": "k" * 40})
    with pytest.raises(ConfigError, match="PORTAL_PRINCIPAL_KEY is no longer used"):
        GatewaySettings.from_env({**TEST_GATEWAY_ENV, "PORTAL_PRINCIPAL_KEY": "k" * 40})


def test_public_keys_are_read_from_a_list_with_notes_between_them(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    text = f"new key, since May\n{public_pem(new.public)}\nold key, remove in June\n"
    text += public_pem(old.public)
    assert set(load_public_keys(text)) == {old.kid, new.kid}
    path = tmp_path / "keys.pem"
    path.write_text(text)
    settings = ServiceSettings.from_env("forms", {"PORTAL_PRINCIPAL_PUBLIC_KEYS_FILE": str(path)})
    assert set(settings.principal_public_keys) == {old.kid, new.kid}
    with pytest.raises(ConfigError, match="not both"):
        ServiceSettings.from_env(
            "forms",
            {"PORTAL_PRINCIPAL_PUBLIC_KEYS_FILE": str(path), **TEST_SERVICE_ENV},
        )
    with pytest.raises(ConfigError, match="cannot read"):
        ServiceSettings.from_env("forms", {"PORTAL_PRINCIPAL_PUBLIC_KEYS_FILE": str(tmp_path)})


def test_keys_that_are_not_ed25519_are_refused_without_showing_them() -> None:
    from cryptography.hazmat.primitives import serialization

    ec = generate_private_key(SECP256R1())
    ec_private = ec.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    ec_public = (
        ec.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(BadKey, match="not an Ed25519 key"):
        load_signing_key(ec_private)
    with pytest.raises(BadKey, match="not an Ed25519 key"):
        load_public_keys(ec_public)
    with pytest.raises(BadKey, match="no PEM block"):
        load_public_keys("k" * 40)
    with pytest.raises(ConfigError, match=r"^PORTAL_PRINCIPAL_PRIVATE_KEY: ") as refused:
        GatewaySettings.from_env({**TEST_GATEWAY_ENV, "PORTAL_PRINCIPAL_PRIVATE_KEY": ec_private})
    assert ec_private.splitlines()[1] not in str(refused.value)
    with pytest.raises(ConfigError, match=r"^PORTAL_PRINCIPAL_PRIVATE_KEY: expected one"):
        GatewaySettings.from_env(
            {
                **TEST_GATEWAY_ENV,
                "PORTAL_PRINCIPAL_PRIVATE_KEY": TEST_PRINCIPAL_PRIVATE_KEY * 2,
            }
        )


def test_the_gateway_secret_is_its_own_setting() -> None:
    settings = GatewaySettings.from_env(TEST_GATEWAY_ENV)
    assert settings.principal_key.kid in load_public_keys(TEST_PRINCIPAL_PUBLIC_KEY)
    with pytest.raises(ConfigError, match=r"^PORTAL_GATEWAY_SECRET is not set$"):
        GatewaySettings.from_env({"PORTAL_PRINCIPAL_PRIVATE_KEY": TEST_PRINCIPAL_PRIVATE_KEY})
    with pytest.raises(ConfigError, match=r"^PORTAL_GATEWAY_SECRET must be at least 32"):
        GatewaySettings.from_env({**TEST_GATEWAY_ENV, "PORTAL_GATEWAY_SECRET": "short"})


def test_key_ids_are_rfc_7638_thumbprints() -> None:
    # RFC 8037, appendix A.3: the thumbprint of the example Ed25519 key.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "="))
    assert key_id(public) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
