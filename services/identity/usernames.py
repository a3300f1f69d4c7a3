"""Usernames: generation for new patient accounts, normalisation and validation.

A generated username is readable but reveals little: the first-name initial, at most eight
letters of the last name (ASCII-folded) and a random suffix, e.g. ``jsmith4821``. It never
holds a date of birth nor a full first and last name.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable
from typing import Final

__all__ = [
    "USERNAME_PATTERN",
    "check_username",
    "generate_username",
    "normalize_username",
]

USERNAME_MIN_LENGTH: Final = 3
USERNAME_MAX_LENGTH: Final = 64
USERNAME_PATTERN: Final = re.compile(r"\A[a-z][a-z0-9._-]{2,63}\Z")

_LAST_NAME_LETTERS: Final = 8
_FALLBACK_BASE: Final = "patient"
_SHORT_SUFFIX_DIGITS: Final = 4
_SHORT_SUFFIX_TRIES: Final = 20
_LONG_SUFFIX_DIGITS: Final = 6
_LONG_SUFFIX_TRIES: Final = 20

# Latin letters that NFKD does not decompose into an ASCII base letter.
_EXTRA_FOLDS: Final = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "ss",
        "Æ": "ae",
        "æ": "ae",
        "Œ": "oe",
        "œ": "oe",
        "Ø": "o",
        "ø": "o",
        "Ł": "l",
        "ł": "l",
        "Đ": "d",
        "đ": "d",
        "Ð": "d",
        "ð": "d",
        "Þ": "th",
        "þ": "th",
        "Ħ": "h",
        "ħ": "h",
        "\u0131": "i",  # dotless i
        "Ŋ": "n",
        "ŋ": "n",
    }
)


def _ascii_letters(name: str) -> str:
    """Lower-case ASCII letters of *name*: 'Zoë' -> 'zoe', "O'Brien-Łukasz" -> 'obrienlukasz'."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_EXTRA_FOLDS))
    return "".join(c for c in decomposed if c.isascii() and c.isalpha()).lower()


def _base(first_name: str, last_name: str) -> str:
    first = _ascii_letters(first_name)
    last = _ascii_letters(last_name)
    if first and last:
        base = first[0] + last[:_LAST_NAME_LETTERS]
    elif last:
        base = last[:_LAST_NAME_LETTERS]
    elif first:
        base = first[:_LAST_NAME_LETTERS]
    else:
        return _FALLBACK_BASE
    # Never spell out a long (over eight letters) first or last name, even by coincidence
    # (e.g. first name 'Aberkeley', last name 'Berkeley').
    long_names = [n for n in (first, last) if len(n) > _LAST_NAME_LETTERS]
    while len(base) > 1 and any(n in base for n in long_names):
        base = base[:-1]
    return base


def _suffix(digits: int) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def generate_username(
    first_name: str,
    last_name: str,
    *,
    taken: Callable[[str], bool] | None = None,
) -> str:
    """A readable, random username such as ``jsmith4821`` that *taken* does not report as used.

    Draws a 4-digit suffix up to 20 times, then a 6-digit suffix up to 20 times, and raises
    RuntimeError if every candidate is taken.
    """
    # `taken` only avoids most collisions: the database's unique constraint is the real
    # guard, and the caller retries (calls this again) on a unique violation.
    base = _base(first_name, last_name)
    for digits, tries in (
        (_SHORT_SUFFIX_DIGITS, _SHORT_SUFFIX_TRIES),
        (_LONG_SUFFIX_DIGITS, _LONG_SUFFIX_TRIES),
    ):
        for _ in range(tries):
            candidate = base + _suffix(digits)
            if taken is None or not taken(candidate):
                return candidate
    raise RuntimeError("could not find a free username")


def normalize_username(raw: str) -> str:
    """The canonical form of a typed username: NFKC, surrounding whitespace removed,
    lower-case. Apply before look-ups and before check_username."""
    return unicodedata.normalize("NFKC", raw).strip().lower()


def check_username(name: str) -> list[str]:
    """Problems with a (normalised) username; an empty list means it is OK."""
    problems: list[str] = []
    if not USERNAME_MIN_LENGTH <= len(name) <= USERNAME_MAX_LENGTH:
        problems.append(
            f"Use {USERNAME_MIN_LENGTH} to {USERNAME_MAX_LENGTH} characters for the username."
        )
    if not name or not ("a" <= name[0] <= "z"):
        problems.append("Start the username with a letter (a-z).")
    if any(not (c.isascii() and (c.islower() or c.isdigit() or c in "._-")) for c in name):
        problems.append(
            "Use only lower-case letters a-z, digits, dots, hyphens and underscores "
            "in the username."
        )
    return problems
