"""The Ed25519 keys of principals: the gateway's private key and the services' public keys.

Keys are PEM text (PKCS#8 private keys, SubjectPublicKeyInfo public keys), as
`openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write them. Text outside the
PEM blocks is ignored, so a list of public keys may say which key is which. A key's id is its
RFC 7638 JWK thumbprint, computed the same way on both sides: nothing to configure, and a key id
can never name the wrong key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\s+[A-Za-z0-9+/=\s]+?-----END \1-----", re.MULTILINE
)


class BadKey(ValueError):
    """Key text that is not what it should be; the message says what was wrong, never the key."""


@dataclass(frozen=True)
class SigningKey:
    """The gateway's private key and its id (the thumbprint of its public key)."""

    kid: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def key_id(public: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint: SHA-256 of the canonical JWK {"crv","kty","x"}, base64url."""
    x = _b64url(public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _blocks(text: str, kind: str) -> list[str]:
    found = [m.group(0) for m in _PEM_BLOCK.finditer(text)]
    if not found:
        raise BadKey(f"no PEM block found; expected {kind}")
    return found


def load_signing_key(text: str) -> SigningKey:
    """One PEM Ed25519 private key (PKCS#8, unencrypted)."""
    blocks = _blocks(text, "an Ed25519 private key (-----BEGIN PRIVATE KEY-----)")
    if len(blocks) != 1:
        raise BadKey(f"expected one private key, found {len(blocks)} PEM blocks")
    try:
        key = serialization.load_pem_private_key(blocks[0].encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise BadKey("not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadKey("the private key is not an Ed25519 key")
    return SigningKey(key_id(key.public_key()), key)


def load_public_keys(text: str) -> dict[str, Ed25519PublicKey]:
    """One or more PEM Ed25519 public keys, by key id (two while keys rotate)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for block in _blocks(text, "Ed25519 public keys (-----BEGIN PUBLIC KEY-----)"):
        try:
            key = serialization.load_pem_public_key(block.encode())
        except (ValueError, UnsupportedAlgorithm):
            raise BadKey("a PEM block is not a public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadKey("a public key is not an Ed25519 key")
        keys[key_id(key)] = key
    return keys


def generate() -> tuple[str, str]:
    """A new key pair as PEM text: (private, public)."""
    private = Ed25519PrivateKey.generate()
    return private_pem(private), public_pem(private.public_key())


def private_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
