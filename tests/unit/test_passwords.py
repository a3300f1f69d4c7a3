"""Unit tests for services.identity.passwords (hashing, policy, generation)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import argon2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.identity.passwords import (
    ALPHABET_DIGITS,
    ALPHABET_LOWER,
    ALPHABET_SYMBOLS,
    ALPHABET_UPPER,
    CONTAINS_EMAIL,
    CONTAINS_USERNAME,
    GENERATED_ALPHABET,
    MAX_LENGTH,
    MIN_LENGTH,
    SAME_AS_CURRENT,
    TOO_COMMON,
    TOO_LONG,
    TOO_SHORT,
    HashParams,
    PasswordHasher,
    check_password,
    common_passwords,
    generate_password,
)

ALL_MESSAGES = {
    TOO_SHORT,
    TOO_LONG,
    CONTAINS_USERNAME,
    CONTAINS_EMAIL,
    TOO_COMMON,
    SAME_AS_CURRENT,
}
GOOD = "Violet-Harbour-Lantern7"
USERNAME = "jsmith4821"
EMAIL = "Jane.Smith@example.org"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ASCII letters and digits only: NFKC leaves them alone, so lengths are exact.
plain = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher()


# --------------------------------------------------------------------------- HashParams


def test_hash_params_defaults_are_the_minimums() -> None:
    assert HashParams() == HashParams(memory_kib=19456, time_cost=2, parallelism=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"memory_kib": 19455},
        {"memory_kib": 1024},
        {"time_cost": 1},
        {"time_cost": 0},
        {"parallelism": 0},
        {"parallelism": -1},
    ],
)
def test_hash_params_below_minimum_rejected(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        HashParams(**kwargs)


def test_hash_params_above_minimum_accepted() -> None:
    params = HashParams(memory_kib=65536, time_cost=3, parallelism=4)
    assert params.memory_kib == 65536


# --------------------------------------------------------------------------- hashing


async def test_hash_is_argon2id_with_configured_parameters(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash(GOOD)
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    params = argon2.extract_parameters(encoded)
    assert params.type is argon2.Type.ID
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19456, 2, 1)
    assert GOOD not in encoded


async def test_hashes_are_salted(hasher: PasswordHasher) -> None:
    first, second = await asyncio.gather(hasher.hash(GOOD), hasher.hash(GOOD))
    assert first != second


async def test_verify_right_and_wrong_password(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash(GOOD)
    assert await hasher.verify(encoded, GOOD) is True
    assert await hasher.verify(encoded, GOOD + "x") is False
    assert await hasher.verify(encoded, GOOD.lower()) is False
    assert await hasher.verify(encoded, "") is False


async def test_verify_normalizes_unicode(hasher: PasswordHasher) -> None:
    composed = "Caf\u00e9-au-lait-2024"
    decomposed = "Cafe\u0301-au-lait-2024"
    encoded = await hasher.hash(composed)
    assert await hasher.verify(encoded, decomposed) is True


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1$garbage",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaA",
        "$2b$12$abcdefghijklmnopqrstuuKp0lGs6PQ9NkBq.eZ8b8b5z5rIvpOqa",
        "pbkdf2_sha256$600000$salt$hash",
    ],
)
async def test_verify_garbage_hash_is_false(hasher: PasswordHasher, garbage: str) -> None:
    assert await hasher.verify(garbage, GOOD) is False


async def test_needs_rehash_after_parameter_change(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash(GOOD)
    assert hasher.needs_rehash(encoded) is False
    assert PasswordHasher(HashParams(time_cost=3)).needs_rehash(encoded) is True
    assert PasswordHasher(HashParams(memory_kib=19456 * 2)).needs_rehash(encoded) is True
    assert PasswordHasher(HashParams(parallelism=2)).needs_rehash(encoded) is True
    # A hash made under old parameters still verifies with the new hasher.
    assert await PasswordHasher(HashParams(time_cost=3)).verify(encoded, GOOD) is True


def test_needs_rehash_of_garbage_is_true(hasher: PasswordHasher) -> None:
    assert hasher.needs_rehash("not a hash") is True


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.calls = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


async def test_supplied_executor_is_used() -> None:
    with CountingExecutor() as executor:
        hasher = PasswordHasher(executor=executor)
        encoded = await hasher.hash(GOOD)
        assert await hasher.verify(encoded, GOOD)
        await hasher.burn(GOOD)
        assert executor.calls >= 3


async def test_hashing_does_not_block_the_event_loop(hasher: PasswordHasher) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0)  # let the ticker start
        start = ticks
        await hasher.hash(GOOD)
        assert ticks > start
    finally:
        done.set()
        await task


async def test_burn_costs_about_a_verify() -> None:
    hasher = PasswordHasher()
    encoded = await hasher.hash(GOOD)
    await hasher.warm_up()
    verify_times: list[float] = []
    burn_times: list[float] = []
    for _ in range(5):
        start = time.perf_counter()
        await hasher.verify(encoded, "wrong password guess")
        verify_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        await hasher.burn("wrong password guess")
        burn_times.append(time.perf_counter() - start)
    verify_median = statistics.median(verify_times)
    burn_median = statistics.median(burn_times)
    assert burn_median > 0.3 * verify_median, (burn_median, verify_median)


async def test_burn_without_warm_up_works() -> None:
    await PasswordHasher().burn("anything at all")


# --------------------------------------------------------------------------- policy


def test_common_list_is_loaded_and_large() -> None:
    common = common_passwords()
    assert len(common) >= 10_000
    assert {"password", "123456", "qwerty", "iloveyou"} <= common
    assert all(entry == entry.lower() and not entry.startswith("#") for entry in common)
    assert common_passwords() is common  # loaded once


def test_good_password_accepted() -> None:
    assert check_password(GOOD, username=USERNAME, email=EMAIL) == []
    assert check_password(GOOD, username=None, email=None, current_password="Older-one-123") == []


@given(plain)
@FAST
def test_length_rule(password: str) -> None:
    problems = check_password(password, username=None, email=None)
    assert (TOO_SHORT in problems) == (len(password) < MIN_LENGTH)
    assert (TOO_LONG in problems) == (len(password) > MAX_LENGTH)


def test_length_boundaries() -> None:
    base = "Kq7#vT2m"
    assert TOO_SHORT in check_password((base * 2)[:11], username=None, email=None)
    assert check_password((base * 2)[:12], username=None, email=None) == []
    assert check_password((base * 16)[:128], username=None, email=None) == []
    assert TOO_LONG in check_password((base * 17)[:129], username=None, email=None)


def test_length_counts_code_points_after_nfkc() -> None:
    # U+FB01 LATIN SMALL LIGATURE FI becomes "fi" (2 code points) under NFKC.
    assert TOO_SHORT not in check_password("\ufb01" * 6, username=None, email=None)
    assert TOO_SHORT in check_password("\ufb01" * 5 + "x", username=None, email=None)
    # Combining sequences compose to one code point each: 11 "é" are 11 characters.
    assert TOO_SHORT in check_password("e\u0301" * 11, username=None, email=None)
    # Astral characters count once each.
    assert TOO_SHORT not in check_password("\U0001f600" * 12, username=None, email=None)


@given(prefix=plain, suffix=plain, upper=st.lists(st.booleans(), min_size=10, max_size=10))
@FAST
def test_username_rule(prefix: str, suffix: str, upper: list[bool]) -> None:
    mixed = "".join(c.upper() if u else c for c, u in zip(USERNAME, upper, strict=True))
    problems = check_password(prefix + mixed + suffix, username=USERNAME, email=None)
    assert CONTAINS_USERNAME in problems


def test_username_equal_rejected_and_unrelated_accepted() -> None:
    long_name = "margaret.fitzgerald"
    assert CONTAINS_USERNAME in check_password(long_name, username=long_name, email=None)
    assert CONTAINS_USERNAME in check_password(
        "  Margaret.Fitzgerald  ", username=long_name, email=None
    )
    assert CONTAINS_USERNAME not in check_password(GOOD, username=long_name, email=None)


def test_very_short_identifiers_only_rejected_when_equal() -> None:
    # A two-letter e-mail local part must not forbid every password containing it.
    assert CONTAINS_EMAIL not in check_password("jolly-green-giant", username=None, email="jo@x.io")
    assert check_password("jo", username=None, email="jo@x.io").count(CONTAINS_EMAIL) == 1


@given(prefix=plain, suffix=plain)
@FAST
def test_email_rule(prefix: str, suffix: str) -> None:
    local = EMAIL.split("@")[0]
    for inner in (EMAIL, EMAIL.upper(), local, local.lower(), local.upper()):
        problems = check_password(prefix + inner + suffix, username=None, email=EMAIL)
        assert CONTAINS_EMAIL in problems, inner


def test_common_password_rejected_case_insensitively() -> None:
    long_common = sorted(p for p in common_passwords() if len(p) >= MIN_LENGTH)
    assert long_common, "expected some common passwords of 12+ characters"
    for entry in long_common[:50]:
        assert check_password(entry, username=None, email=None) == [TOO_COMMON]
        assert check_password(entry.upper(), username=None, email=None) == [TOO_COMMON]
    assert TOO_COMMON in check_password("PassWord", username=None, email=None)


@given(st.sampled_from(sorted(common_passwords())))
@FAST
def test_every_common_entry_rejected(entry: str) -> None:
    assert TOO_COMMON in check_password(entry.title(), username=None, email=None)


def test_new_must_differ_from_current() -> None:
    assert check_password(GOOD, username=None, email=None, current_password=GOOD) == [
        SAME_AS_CURRENT
    ]
    assert SAME_AS_CURRENT not in check_password(
        GOOD, username=None, email=None, current_password=GOOD + "!"
    )


@given(
    body=st.text(max_size=140),
    username=st.one_of(st.none(), st.text(max_size=20)),
    email=st.one_of(st.none(), st.emails()),
    same=st.booleans(),
)
@FAST
def test_messages_never_contain_the_password(
    body: str, username: str | None, email: str | None, same: bool
) -> None:
    password = "Zq\u00a7" + body  # a marker that no message contains
    problems = check_password(
        password, username=username, email=email, current_password=password if same else None
    )
    assert set(problems) <= ALL_MESSAGES
    assert len(problems) == len(set(problems))
    for message in problems:
        assert password not in message
        assert message.endswith(".")


# --------------------------------------------------------------------------- generation

AMBIGUOUS = set("0Oo1lI")


@given(st.integers(min_value=MIN_LENGTH, max_value=MAX_LENGTH))
@FAST
def test_generated_password_properties(length: int) -> None:
    password = generate_password(length)
    assert len(password) == length
    assert set(password) <= set(GENERATED_ALPHABET)
    assert not set(password) & AMBIGUOUS
    for cls in (ALPHABET_LOWER, ALPHABET_UPPER, ALPHABET_DIGITS, ALPHABET_SYMBOLS):
        assert set(password) & set(cls)
    assert check_password(password, username=None, email=None) == []


def test_generated_default_length_and_alphabet() -> None:
    assert len(generate_password()) == 14
    assert not set(GENERATED_ALPHABET) & AMBIGUOUS
    assert len(set(GENERATED_ALPHABET)) == len(GENERATED_ALPHABET)


@pytest.mark.parametrize("length", [-1, 0, 8, 11, MAX_LENGTH + 1])
def test_generated_length_out_of_range_rejected(length: int) -> None:
    with pytest.raises(ValueError):
        generate_password(length)


def test_generated_passwords_do_not_collide() -> None:
    draws = [generate_password() for _ in range(2000)]
    assert len(set(draws)) == len(draws)
    # Every alphabet character shows up over that many draws (nothing is left out).
    assert set("".join(draws)) == set(GENERATED_ALPHABET)
