"""TOTP against the test vectors of RFC 6238 appendix B (SHA-1, 8 digits) and RFC 4226."""

from __future__ import annotations

import base64

import pytest

from services.identity import totp

RFC_KEY = b"12345678901234567890"
RFC_SECRET = base64.b32encode(RFC_KEY).decode()


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_rfc6238_vectors(at: int, expected: str) -> None:
    assert totp.hotp(RFC_KEY, totp.time_step(at), digits=8) == expected


def test_rfc4226_hotp_vectors() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314"]
    assert [totp.hotp(RFC_KEY, c) for c in range(5)] == expected


def test_six_digit_code_is_the_last_six_of_the_rfc_value() -> None:
    assert totp.code_at(RFC_SECRET, 1234567890) == "005924"


def test_a_code_matches_its_step_and_the_neighbours_only() -> None:
    at = 1234567890
    step = totp.time_step(at)
    code = totp.code_at(RFC_SECRET, at)
    assert totp.matching_step(RFC_SECRET, code, after=0, at=at) == step
    assert totp.matching_step(RFC_SECRET, code, after=0, at=at + 30) == step
    assert totp.matching_step(RFC_SECRET, code, after=0, at=at + 90) is None


def test_a_used_step_is_refused() -> None:
    at = 1234567890
    code = totp.code_at(RFC_SECRET, at)
    assert totp.matching_step(RFC_SECRET, code, after=totp.time_step(at), at=at) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", " 12345"])
def test_malformed_codes_never_match(code: str) -> None:
    assert totp.matching_step(RFC_SECRET, code, after=0, at=59) is None


def test_new_secret_is_160_bits_of_base32() -> None:
    secret = totp.new_secret()
    assert len(base64.b32decode(secret + "=" * (-len(secret) % 8))) == 20


def test_otpauth_uri_names_issuer_and_account() -> None:
    uri = totp.otpauth_uri("ABC", "ada smith", "Patient Portal")
    assert uri.startswith("otpauth://totp/Patient%20Portal:ada%20smith?secret=ABC&issuer=")
