"""Sign-in attempts per client address, counted in PostgreSQL so every gateway replica shares
one budget (identity's lockout protects each account; this slows one address down).

A fixed window per address: the first attempt opens it, each attempt counts in one atomic
UPSERT (so concurrent attempts from several replicas are all counted), and once the window has
passed the next attempt opens a new one. Clock: the database's now().
"""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.db import Conn

ADDRESS_MAX = 64  # an IPv6 address with a zone fits; anything longer is not an address
SWEEP_BATCH = 100  # expired rows removed per attempt, so the table stays small without a job


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int  # seconds until the window ends (0 when allowed)


async def attempt(conn: Conn, address: str, *, limit: int, window_seconds: int) -> Verdict:
    """Count one attempt from `address`; refused beyond `limit` in the current window."""
    row = await conn.fetchrow(
        """INSERT INTO sign_in_rate AS r (address, window_start, attempts)
           VALUES ($1, now(), 1)
           ON CONFLICT (address) DO UPDATE SET
             window_start = CASE WHEN r.window_start <= now() - make_interval(secs => $2)
                                 THEN now() ELSE r.window_start END,
             attempts = CASE WHEN r.window_start <= now() - make_interval(secs => $2)
                             THEN 1 ELSE r.attempts + 1 END
           RETURNING r.attempts,
             ceil(extract(epoch FROM r.window_start + make_interval(secs => $2) - now()))::int
               AS remaining""",
        address[:ADDRESS_MAX],
        window_seconds,
    )
    await conn.execute(
        """DELETE FROM sign_in_rate WHERE address IN (
             SELECT address FROM sign_in_rate
             WHERE window_start <= now() - make_interval(secs => $1)
             ORDER BY window_start LIMIT $2)""",
        window_seconds,
        SWEEP_BATCH,
    )
    if row is None or row["attempts"] <= limit:
        return Verdict(True, 0)
    return Verdict(False, max(1, int(row["remaining"])))
