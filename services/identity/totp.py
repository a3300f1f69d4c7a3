"""TOTP (RFC 6238) over HOTP (RFC 4226): HMAC-SHA1, 30-second steps, six digits.

Written on the standard library: the algorithm is a dozen lines and the RFC's vectors test it.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
# Codes of the previous and the next step are accepted too (clock drift of the phone).
DRIFT_STEPS = 1


def new_secret() -> str:
    """A 160-bit secret, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    mac = hmac.new(key, struct.pack(">Q", counter), digest).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


def time_step(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // STEP_SECONDS)


def code_at(secret: str, at: float | None = None) -> str:
    return hotp(_key(secret), time_step(at))


def matching_step(secret: str, code: str, *, after: int, at: float | None = None) -> int | None:
    """The time step whose code `code` is, within the drift window and later than `after`.

    Steps at or before `after` (the last one used) are refused: a code is good only once.
    """
    if len(code) != DIGITS or not code.isdigit():
        return None
    key, now = _key(secret), time_step(at)
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if step > after and hmac.compare_digest(hotp(key, step), code):
            return step
    return None


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    label = quote(f"{issuer}:{account}", safe=":@")
    query = urlencode(
        {"secret": secret, "issuer": issuer, "digits": DIGITS, "period": STEP_SECONDS}
    )
    return f"otpauth://totp/{label}?{query}"
