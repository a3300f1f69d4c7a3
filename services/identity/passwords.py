"""Password hashing (argon2id), the password policy and generated passwords.

Pure Python: no database, no network. Hashing is CPU-bound and always runs off the event
loop (argon2-cffi releases the GIL, so worker threads hash in parallel).

Passwords are normalised to Unicode NFKC before hashing, verifying and policy checks, so the
same password typed on different keyboards (composed or decomposed accents, full-width forms)
is accepted. Every caller must go through this module; never hash a password elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from importlib import resources
from typing import Final, TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "ALPHABET_DIGITS",
    "ALPHABET_LOWER",
    "ALPHABET_SYMBOLS",
    "ALPHABET_UPPER",
    "CONTAINS_EMAIL",
    "CONTAINS_USERNAME",
    "GENERATED_ALPHABET",
    "MAX_LENGTH",
    "MIN_LENGTH",
    "SAME_AS_CURRENT",
    "TOO_COMMON",
    "TOO_LONG",
    "TOO_SHORT",
    "HashParams",
    "PasswordHasher",
    "check_password",
    "common_passwords",
    "generate_password",
]

_T = TypeVar("_T")

# --------------------------------------------------------------------------- hashing

MIN_MEMORY_KIB: Final = 19456  # 19 MiB, the OWASP minimum for argon2id
MIN_TIME_COST: Final = 2
MIN_PARALLELISM: Final = 1
_HASH_LEN: Final = 32
_SALT_LEN: Final = 16


@dataclass(frozen=True)
class HashParams:
    """argon2id cost parameters; the minimums are enforced (tests use the minimums too)."""

    memory_kib: int = MIN_MEMORY_KIB
    time_cost: int = MIN_TIME_COST
    parallelism: int = MIN_PARALLELISM

    def __post_init__(self) -> None:
        for name, value, minimum in (
            ("memory_kib", self.memory_kib, MIN_MEMORY_KIB),
            ("time_cost", self.time_cost, MIN_TIME_COST),
            ("parallelism", self.parallelism, MIN_PARALLELISM),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"argon2 {name} must be an integer")
            if value < minimum:
                raise ValueError(f"argon2 {name} must be at least {minimum}, got {value}")


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


class PasswordHasher:
    """Async argon2id hasher. Safe to share between tasks and threads."""

    def __init__(self, params: HashParams | None = None, *, executor: Executor | None = None):
        self.params: Final = params if params is not None else HashParams()
        self._executor = executor
        self._hasher = argon2.PasswordHasher(
            time_cost=self.params.time_cost,
            memory_cost=self.params.memory_kib,
            parallelism=self.params.parallelism,
            hash_len=_HASH_LEN,
            salt_len=_SALT_LEN,
            type=argon2.Type.ID,
        )
        # A hash of a random secret nobody knows; burn() verifies against it so that an
        # unknown username costs the same time as a known one. Computed once, lazily.
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    async def _run(self, func: Callable[..., _T], *args: object) -> _T:
        if self._executor is None:
            return await asyncio.to_thread(func, *args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)

    # -- synchronous cores (run in a worker thread) --

    def _hash_sync(self, password: str) -> str:
        return self._hasher.hash(_nfkc(password))

    def _verify_sync(self, stored_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, _nfkc(password))
        except (VerificationError, InvalidHashError):
            # VerifyMismatchError (wrong password) is a VerificationError.
            return False

    def _get_dummy_hash(self) -> str:
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(32))
            return self._dummy_hash

    def _burn_sync(self, password: str) -> None:
        self._verify_sync(self._get_dummy_hash(), password)

    # -- public API --

    async def hash(self, password: str) -> str:
        """Return an encoded argon2id hash (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``)."""
        return await self._run(self._hash_sync, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        """True if *password* matches; False on mismatch or an invalid hash. Never raises
        for a wrong password."""
        return await self._run(self._verify_sync, stored_hash, password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """True if *stored_hash* was not made with the current parameters (or is invalid).
        Call after a successful verify and store a fresh hash when it is True."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True

    async def burn(self, password: str) -> None:
        """Spend the time of one verify without checking anything (for unknown usernames)."""
        await self._run(self._burn_sync, password)

    async def warm_up(self) -> None:
        """Compute the dummy hash now (optional; otherwise the first burn() does it)."""
        await self._run(self._get_dummy_hash)


# --------------------------------------------------------------------------- policy

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 128
# Identifiers shorter than this are only rejected when the password equals them, so that a
# one- or two-letter e-mail local part does not forbid half of all passwords.
_MIN_CONTAINED_IDENTIFIER: Final = 3

TOO_SHORT: Final = f"Use at least {MIN_LENGTH} characters."
TOO_LONG: Final = f"Use at most {MAX_LENGTH} characters."
CONTAINS_USERNAME: Final = "Do not use your username in your password."
CONTAINS_EMAIL: Final = "Do not use your e-mail address in your password."
TOO_COMMON: Final = "This password is too common. Choose one that is harder to guess."
SAME_AS_CURRENT: Final = "Choose a password that is different from your current one."

_COMMON_PASSWORDS_RESOURCE: Final = "common_passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped common-password list (lower-case), loaded once."""
    text = (
        resources.files(__package__ or "services.identity")
        .joinpath("data", _COMMON_PASSWORDS_RESOURCE)
        .read_text(encoding="utf-8")
    )
    return frozenset(
        line.strip().casefold()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def _fold(text: str) -> str:
    return _nfkc(text).casefold().strip()


def _mentions(folded_password: str, identifier: str) -> bool:
    if not identifier:
        return False
    if len(identifier) < _MIN_CONTAINED_IDENTIFIER:
        return folded_password == identifier
    return identifier in folded_password


def check_password(
    password: str,
    *,
    username: str | None,
    email: str | None,
    current_password: str | None = None,
) -> list[str]:
    """Problems with a patient-chosen or staff-typed password; an empty list means it is OK.

    Messages are fixed sentences (the module constants above) and never quote the password.
    """
    problems: list[str] = []
    normalized = _nfkc(password)
    length = len(normalized)  # Unicode code points after NFKC
    if length < MIN_LENGTH:
        problems.append(TOO_SHORT)
    elif length > MAX_LENGTH:
        problems.append(TOO_LONG)

    folded = normalized.casefold()
    if username is not None and _mentions(folded, _fold(username)):
        problems.append(CONTAINS_USERNAME)
    if email is not None:
        full = _fold(email)
        local = full.rpartition("@")[0] if "@" in full else full
        if _mentions(folded, full) or _mentions(folded, local):
            problems.append(CONTAINS_EMAIL)

    if folded in common_passwords() or folded.strip() in common_passwords():
        problems.append(TOO_COMMON)

    if current_password is not None and normalized == _nfkc(current_password):
        problems.append(SAME_AS_CURRENT)
    return problems


# --------------------------------------------------------------------------- generation

# Unambiguous alphabet: no 0 O o, 1 l I, 5 S (easy to read from a printed letter).
ALPHABET_LOWER: Final = "abcdefghijkmnpqrstuvwxyz"
ALPHABET_UPPER: Final = "ABCDEFGHJKLMNPQRTUVWXYZ"
ALPHABET_DIGITS: Final = "2346789"
ALPHABET_SYMBOLS: Final = "!#%+=?@"
GENERATED_ALPHABET: Final = ALPHABET_LOWER + ALPHABET_UPPER + ALPHABET_DIGITS + ALPHABET_SYMBOLS

_CLASSES: Final = (ALPHABET_LOWER, ALPHABET_UPPER, ALPHABET_DIGITS, ALPHABET_SYMBOLS)
_sysrandom = secrets.SystemRandom()


def generate_password(length: int = 14) -> str:
    """A random password (CSPRNG) with at least one lower-case letter, upper-case letter,
    digit and symbol, drawn from an unambiguous alphabet; it passes check_password."""
    if length < MIN_LENGTH:
        raise ValueError(f"generated passwords need at least {MIN_LENGTH} characters")
    if length > MAX_LENGTH:
        raise ValueError(f"generated passwords may have at most {MAX_LENGTH} characters")
    while True:
        chars = [secrets.choice(cls) for cls in _CLASSES]
        chars += [secrets.choice(GENERATED_ALPHABET) for _ in range(length - len(chars))]
        _sysrandom.shuffle(chars)
        candidate = "".join(chars)
        if not check_password(candidate, username=None, email=None):
            return candidate
