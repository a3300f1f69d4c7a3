"""The credentials letter's fields, signed by the gateway: only letters it issued become PDFs.

The letter page carries its fields as one hidden value, `<fields as JSON>.<HMAC-SHA256>` (both
base64url), under a key derived from the gateway's key. The PDF route takes the value only
unchanged, for the patient, realm and staff user it was made for, and for LIFETIME after the
letter was made; after that only a reset gives a new letter (the password is not kept).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

LIFETIME = timedelta(minutes=10)


class Refused(Exception):
    """The value is not a letter this gateway made (`expired`: it was, but too long ago)."""

    def __init__(self, *, expired: bool = False) -> None:
        super().__init__("expired" if expired else "not signed")
        self.expired = expired


@dataclass(frozen=True)
class LetterFields:
    patient_id: str
    realm: str
    staff_user_id: str  # who the letter was made for
    patient_name: str
    username: str
    password: str
    expires_at: str  # ISO 8601, "" when the password does not expire
    issued_at: str  # ISO 8601, with its offset
    reset: bool

    def issued(self) -> datetime:
        return datetime.fromisoformat(self.issued_at)

    def expires(self) -> datetime | None:
        return datetime.fromisoformat(self.expires_at) if self.expires_at else None


def key_for(gateway_key: str) -> bytes:
    return hashlib.sha256(b"letter:" + gateway_key.encode()).digest()


def seal(fields: LetterFields, key: bytes) -> str:
    body = _b64(json.dumps(asdict(fields), ensure_ascii=False, separators=(",", ":")).encode())
    return f"{body}.{_b64(_mac(key, body))}"


def unseal(value: str, key: bytes, now: datetime) -> LetterFields:
    """The signed fields; raises Refused when they are not exactly as signed, or too old."""
    body, _, mac = value.partition(".")
    try:
        if not hmac.compare_digest(_unb64(mac), _mac(key, body)):
            raise Refused()
        fields = LetterFields(**json.loads(_unb64(body)))
        issued = fields.issued()
    except (ValueError, TypeError, binascii.Error):
        raise Refused() from None
    if now - issued > LIFETIME:
        raise Refused(expired=True)
    return fields


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
