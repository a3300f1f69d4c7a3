"""Unit tests for services.identity.usernames."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.identity.usernames import (
    USERNAME_PATTERN,
    check_username,
    generate_username,
    normalize_username,
)

FAST = settings(max_examples=80, deadline=None)
letters = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1)


class RejectFirst:
    """A `taken` callback that reports the first *n* candidates as taken."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: list[str] = []

    def __call__(self, candidate: str) -> bool:
        self.seen.append(candidate)
        return len(self.seen) <= self.n


# --------------------------------------------------------------------------- generation


def test_typical_name() -> None:
    name = generate_username("John", "Smith")
    assert re.fullmatch(r"jsmith\d{4}", name), name


def test_long_last_name_is_cut_to_eight_letters() -> None:
    name = generate_username("Maximilian", "Wolfeschlegelstein")
    assert re.fullmatch(r"mwolfesch\d{4}", name), name
    assert "maximilian" not in name
    assert "wolfeschlegelstein" not in name


def test_ascii_folding() -> None:
    name = generate_username("Zoë", "O'Brien-Łukasz")
    assert re.fullmatch(r"zobrienlu\d{4}", name), name
    assert re.fullmatch(r"sschroder\d{4}", generate_username("Šárka", "Schröder"))
    assert re.fullmatch(r"jstrasse\d{4}", generate_username("Jürgen", "Straße"))
    assert re.fullmatch(r"asorensen\d{4}", generate_username("Åse", "Sørensen"))
    assert re.fullmatch(r"ayildiz\d{4}", generate_username("Ayşe", "Y\u0131ld\u0131z"))
    assert re.fullmatch(r"jsmith\d{4}", generate_username("\uff2a\uff4f\uff48\uff4e", "SMITH"))


@pytest.mark.parametrize(
    ("first", "last"),
    [("李", "李"), ("123", "456"), ("", ""), ("  ", "-'"), ("李", "123"), ("😀", "٣٤")],
)
def test_names_without_letters_fall_back_to_patient(first: str, last: str) -> None:
    assert re.fullmatch(r"patient\d{4}", generate_username(first, last))


def test_one_name_without_letters() -> None:
    assert re.fullmatch(r"smith\d{4}", generate_username("李", "Smith"))
    assert re.fullmatch(r"maria\d{4}", generate_username("Maria", "123"))


@given(first=st.text(max_size=40), last=st.text(max_size=40))
@FAST
def test_generated_username_always_valid(first: str, last: str) -> None:
    name = generate_username(first, last)
    assert USERNAME_PATTERN.fullmatch(name), name
    assert check_username(name) == []
    assert normalize_username(name) == name
    assert re.fullmatch(r"[a-z]+\d{4}", name)


@given(first=letters, last=letters)
@FAST
def test_long_names_never_appear_in_full(first: str, last: str) -> None:
    name = generate_username(first, last)
    for part in (first.lower(), last.lower()):
        if len(part) > 8:
            assert part not in name


def test_coincidental_full_first_name_is_avoided() -> None:
    # Initial + eight letters of the last name would spell the nine-letter first name.
    name = generate_username("Aberkeley", "Berkeley")
    assert "aberkeley" not in name
    assert name[0] == "a"


@pytest.mark.parametrize("n", [0, 1, 5, 19])
def test_taken_candidates_are_skipped(n: int) -> None:
    taken = RejectFirst(n)
    name = generate_username("Jane", "Doe", taken=taken)
    assert len(taken.seen) == n + 1
    assert name == taken.seen[-1]
    assert re.fullmatch(r"jdoe\d{4}", name)


@pytest.mark.parametrize("n", [20, 21, 35])
def test_suffix_lengthens_after_twenty_tries(n: int) -> None:
    taken = RejectFirst(n)
    name = generate_username("Jane", "Doe", taken=taken)
    assert name == taken.seen[-1]
    assert all(re.fullmatch(r"jdoe\d{4}", c) for c in taken.seen[:20])
    assert re.fullmatch(r"jdoe\d{6}", name)


def test_only_free_candidate_is_returned() -> None:
    existing = {f"jdoe{i:04d}" for i in range(10_000) if i != 4242}
    calls: list[str] = []

    def taken(candidate: str) -> bool:
        calls.append(candidate)
        return candidate in existing

    name = generate_username("Jane", "Doe", taken=taken)
    assert name not in existing
    assert name == calls[-1]


def test_everything_taken_raises() -> None:
    with pytest.raises(RuntimeError):
        generate_username("Jane", "Doe", taken=lambda _: True)


def test_suffixes_are_random() -> None:
    names = {generate_username("Jane", "Doe") for _ in range(200)}
    assert len(names) > 150


# --------------------------------------------------------------------------- normalise


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  JSmith4821 ", "jsmith4821"),
        ("\uff2a\uff33\uff4d\uff49\uff54\uff48", "jsmith"),  # full-width forms
        ("\u00a0jane.doe\t\n", "jane.doe"),
        ("already", "already"),
    ],
)
def test_normalize_username(raw: str, expected: str) -> None:
    assert normalize_username(raw) == expected


# --------------------------------------------------------------------------- check


@pytest.mark.parametrize(
    "name", ["abc", "jsmith4821", "jane.doe", "j_doe-2", "a" * 64, "x" + "9" * 63]
)
def test_valid_usernames(name: str) -> None:
    assert check_username(name) == []
    assert USERNAME_PATTERN.fullmatch(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ab",
        "a" * 65,
        "1abc",
        ".abc",
        "_abc",
        "JSmith",
        "j smith",
        "jsmith!",
        "zoë",
        "jsmith\n",
        "<script>",
    ],
)
def test_invalid_usernames(name: str) -> None:
    assert check_username(name)
    assert not USERNAME_PATTERN.fullmatch(name)


@given(st.text(max_size=70))
@FAST
def test_check_username_agrees_with_pattern(name: str) -> None:
    assert (check_username(name) == []) == bool(USERNAME_PATTERN.fullmatch(name))
