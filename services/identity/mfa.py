"""Second factors of staff users and portal accounts: TOTP secrets, recovery codes, challenges.

Every check of a code runs in the caller's transaction with the factor's row locked, so two
parallel uses of one code cannot both pass, and failures are counted before anything else.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
from datetime import timedelta

from services.identity import totp
from services.runtime.db import Conn

RECOVERY_CODES = 10
# Rate limit: this many wrong codes per owner within the window, then every code is refused.
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=5)
CHALLENGE_LIFETIME = timedelta(minutes=5)
CHALLENGE_ATTEMPTS = 5
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


class Check(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    LIMITED = "limited"  # too many wrong codes lately
    NONE = "none"  # no factor to check against


def _hash(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def _normalize_recovery(code: str) -> str:
    return "".join(code.lower().split()).replace("-", "")


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


async def status(conn: Conn, kind: str, owner_id: uuid.UUID) -> tuple[bool, bool, int]:
    """(enrolled, pending confirmation, recovery codes left)."""
    row = await conn.fetchrow(
        """SELECT t.confirmed_at IS NOT NULL AS enrolled,
                  (SELECT count(*) FROM mfa_recovery_codes r
                    WHERE r.owner_kind = t.owner_kind AND r.owner_id = t.owner_id
                      AND r.used_at IS NULL) AS left
             FROM mfa_totp t WHERE owner_kind = $1 AND owner_id = $2""",
        kind,
        owner_id,
    )
    if row is None:
        return False, False, 0
    return row["enrolled"], not row["enrolled"], int(row["left"])


async def enrolled(conn: Conn, kind: str, owner_id: uuid.UUID) -> bool:
    return (await status(conn, kind, owner_id))[0]


async def start_enrolment(conn: Conn, kind: str, owner_id: uuid.UUID) -> str | None:
    """A new secret awaiting confirmation; None when a confirmed factor exists already."""
    secret = totp.new_secret()
    stored: str | None = await conn.fetchval(
        """INSERT INTO mfa_totp (owner_kind, owner_id, secret) VALUES ($1, $2, $3)
           ON CONFLICT (owner_kind, owner_id) DO UPDATE SET secret = EXCLUDED.secret
               WHERE mfa_totp.confirmed_at IS NULL
           RETURNING secret""",
        kind,
        owner_id,
        secret,
    )
    return stored


async def check(
    conn: Conn, kind: str, owner_id: uuid.UUID, code: str, *, confirmed: bool, recovery: bool
) -> Check:
    """Check a TOTP code (or, if allowed, a recovery code); in a transaction.

    A TOTP code's step becomes the last used one, so it is refused the second time; a
    recovery code is marked used.
    """
    row = await conn.fetchrow(
        """SELECT secret, last_step, confirmed_at IS NOT NULL AS confirmed,
                  failures >= $3 AND failures_since > now() - $4::interval AS limited
             FROM mfa_totp WHERE owner_kind = $1 AND owner_id = $2 FOR UPDATE""",
        kind,
        owner_id,
        MAX_FAILURES,
        FAILURE_WINDOW,
    )
    if row is None or row["confirmed"] != confirmed:
        return Check.NONE
    if row["limited"]:
        return Check.LIMITED
    code = code.strip()
    step = totp.matching_step(row["secret"], code, after=row["last_step"])
    if step is not None:
        await conn.execute(
            """UPDATE mfa_totp SET last_step = $3, failures = 0
                WHERE owner_kind = $1 AND owner_id = $2""",
            kind,
            owner_id,
            step,
        )
        return Check.OK
    if recovery:
        used = await conn.fetchval(
            """UPDATE mfa_recovery_codes SET used_at = now()
                WHERE owner_kind = $1 AND owner_id = $2 AND code_hash = $3 AND used_at IS NULL
                RETURNING true""",
            kind,
            owner_id,
            _hash(_normalize_recovery(code)),
        )
        if used:
            return Check.OK
    await conn.execute(
        """UPDATE mfa_totp SET
               failures = CASE WHEN failures_since > now() - $3::interval
                               THEN failures + 1 ELSE 1 END,
               failures_since = CASE WHEN failures_since > now() - $3::interval
                                     THEN failures_since ELSE now() END
            WHERE owner_kind = $1 AND owner_id = $2""",
        kind,
        owner_id,
        FAILURE_WINDOW,
    )
    return Check.WRONG


async def confirm(conn: Conn, kind: str, owner_id: uuid.UUID) -> list[str]:
    """Mark the factor confirmed and issue fresh recovery codes (returned once, stored hashed)."""
    await conn.execute(
        "UPDATE mfa_totp SET confirmed_at = now() WHERE owner_kind = $1 AND owner_id = $2",
        kind,
        owner_id,
    )
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    await conn.execute(
        "DELETE FROM mfa_recovery_codes WHERE owner_kind = $1 AND owner_id = $2", kind, owner_id
    )
    await conn.executemany(
        "INSERT INTO mfa_recovery_codes (owner_kind, owner_id, code_hash) VALUES ($1, $2, $3)",
        [(kind, owner_id, _hash(_normalize_recovery(c))) for c in codes],
    )
    return codes


async def remove(conn: Conn, kind: str, owner_id: uuid.UUID) -> bool:
    removed = await conn.fetchval(
        "DELETE FROM mfa_totp WHERE owner_kind = $1 AND owner_id = $2 RETURNING true",
        kind,
        owner_id,
    )
    return bool(removed)


async def new_challenge(conn: Conn, kind: str, owner_id: uuid.UUID) -> str:
    challenge = secrets.token_urlsafe(32)
    await conn.execute(
        """WITH gone AS (DELETE FROM mfa_challenges WHERE expires_at < now())
           INSERT INTO mfa_challenges (challenge_hash, owner_kind, owner_id, expires_at)
           VALUES ($1, $2, $3, now() + $4::interval)""",
        _hash(challenge),
        kind,
        owner_id,
        CHALLENGE_LIFETIME,
    )
    return challenge


async def attempt_challenge(conn: Conn, challenge: str, kind: str) -> tuple[str, uuid.UUID] | None:
    """Count one attempt on a live challenge: (owner kind, owner id), or None (unknown,
    expired or out of attempts). Counted in its own statement, so it holds on failure."""
    row = await conn.fetchrow(
        """UPDATE mfa_challenges SET attempts = attempts + 1
            WHERE challenge_hash = $1 AND expires_at > now() AND attempts < $2
              AND owner_kind = $3
            RETURNING owner_kind, owner_id""",
        _hash(challenge),
        CHALLENGE_ATTEMPTS,
        kind,
    )
    return None if row is None else (row["owner_kind"], row["owner_id"])


async def end_challenge(conn: Conn, challenge: str) -> None:
    await conn.execute("DELETE FROM mfa_challenges WHERE challenge_hash = $1", _hash(challenge))
