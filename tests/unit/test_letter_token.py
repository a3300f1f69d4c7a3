"""The signed credentials-letter fields: only what the gateway signed, unchanged and recent."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.gateway.staff.letter_token import (
    LIFETIME,
    LetterFields,
    Refused,
    key_for,
    seal,
    unseal,
)

KEY = key_for("gateway-key")
ISSUED = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
FIELDS = LetterFields(
    patient_id="6f1c1c8e-0000-4000-8000-000000000001",
    realm="onsite",
    staff_user_id="6f1c1c8e-0000-4000-8000-0000000000aa",
    patient_name="王小明",
    username="wxiaoming",
    password="Kq7#mZ2v!pR9xT",
    expires_at=(ISSUED + timedelta(hours=72)).isoformat(),
    issued_at=ISSUED.isoformat(),
    reset=False,
)


def test_the_signed_fields_come_back_unchanged() -> None:
    sealed = seal(FIELDS, KEY)
    assert unseal(sealed, KEY, ISSUED + timedelta(minutes=3)) == FIELDS
    assert unseal(sealed, KEY, ISSUED).issued() == ISSUED
    assert FIELDS.expires() == ISSUED + timedelta(hours=72)


@pytest.mark.parametrize(
    "change",
    [
        {"patient_name": "Someone Else"},
        {"password": "Chosen-by-the-poster-1"},
        {"reset": True},
        {"issued_at": (ISSUED + timedelta(days=1)).isoformat()},
    ],
)
def test_changed_fields_are_refused(change: dict[str, Any]) -> None:
    # Fields signed with another key, or the body of another letter under this signature.
    forged = seal(dataclasses.replace(FIELDS, **change), key_for("guessed-key"))
    with pytest.raises(Refused) as refused:
        unseal(forged, KEY, ISSUED)
    assert not refused.value.expired
    body = seal(dataclasses.replace(FIELDS, **change), KEY).split(".")[0]
    spliced = body + "." + seal(FIELDS, KEY).split(".")[1]
    with pytest.raises(Refused):
        unseal(spliced, KEY, ISSUED)


@pytest.mark.parametrize("value", ["", ".", "abc", "abc.def", "é.é", "a" * 500 + "." + "b" * 43])
def test_malformed_values_are_refused(value: str) -> None:
    with pytest.raises(Refused) as refused:
        unseal(value, KEY, ISSUED)
    assert not refused.value.expired


def test_an_old_letter_has_expired() -> None:
    sealed = seal(FIELDS, KEY)
    assert unseal(sealed, KEY, ISSUED + LIFETIME).username == FIELDS.username
    with pytest.raises(Refused) as refused:
        unseal(sealed, KEY, ISSUED + LIFETIME + timedelta(seconds=1))
    assert refused.value.expired
