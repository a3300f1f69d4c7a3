"""Verify the hash chains of an append-only audit table (migrations/0002_audit_chain.sql,
0004_audit_chain_lanes.sql).

A table's chain is split into lanes (chain_lane; 8 since 0004, older rows are lane 0) so that
concurrent writers do not all wait on one head row. Each lane is a chain of its own: rows are
read in id order (within a lane, id order is chain order) with one previous hash per lane. Row r
is intact when its prev_hash is its lane's previous row's hash (empty for the lane's first row)
and its hash is sha256(prev_hash || <table>_content(r)), recomputed by the database from the row
as it is now. Each lane's head must name the lane's last row and its hash (an empty lane: id 0
and an empty hash), so rows removed from a lane's end are noticed too. A row moved to another
lane breaks a link in both lanes (or a head). The first row that fails (lowest id) is reported:
an edited row fails itself, a deleted row makes the next one of its lane fail.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from services.runtime.db import Conn

CHAINED = ("audit_log", "access_log")
_BATCH = 2000


@dataclass(frozen=True)
class Verification:
    table: str
    valid: bool
    rows: int
    first_broken: int | None  # the id of the first row that fails (or a lane head's last id)
    # sha256 (hex) over the lane heads in lane order, each as lane (2 bytes), last id (8 bytes,
    # both big-endian) and last hash; empty for an empty table. Record it elsewhere to notice a
    # rewritten chain.
    head: str


def heads_digest(heads: list[tuple[int, int, bytes]]) -> str:
    """The `head` of a Verification from (lane, last_id, last_hash) rows."""
    digest = hashlib.sha256()
    for lane, last_id, last_hash in sorted(heads):
        digest.update(lane.to_bytes(2, "big") + last_id.to_bytes(8, "big") + last_hash)
    return digest.hexdigest()


async def verify(conn: Conn, table: str) -> Verification:
    """Walk `table`'s chains; read-only (SELECT suffices)."""
    if table not in CHAINED:
        raise ValueError(f"{table!r} is not a chained audit table")
    previous: dict[int, bytes] = {}  # lane -> hash of its last row so far
    last_id: dict[int, int] = {}
    rows = 0
    first_broken: int | None = None
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        # One snapshot for the rows and the heads, so appends during the walk are not breaks.
        # Id order (the primary key) rather than (chain_lane, id): no sort, and the lanes' own
        # orders are the same.
        cursor = conn.cursor(
            f"SELECT id, chain_lane, prev_hash, hash, "
            f"sha256(prev_hash || {table}_content(t)) AS expected FROM {table} t ORDER BY id",
            prefetch=_BATCH,
        )
        async for row in cursor:
            rows += 1
            lane = row["chain_lane"]
            intact = row["prev_hash"] == previous.get(lane, b"") and row["hash"] == row["expected"]
            if first_broken is None and not intact:
                first_broken = row["id"]
            previous[lane] = bytes(row["hash"])
            last_id[lane] = row["id"]
        stored = await conn.fetch(
            "SELECT lane, last_id, last_hash FROM audit_chain_heads WHERE table_name = $1", table
        )
    if not stored:
        raise LookupError(f"{table} has no chain head: are its migrations applied?")
    heads = {r["lane"]: (r["last_id"], bytes(r["last_hash"])) for r in stored}
    if first_broken is None:
        # A lane whose head disagrees with its walked end (or has rows but no head).
        cut = [
            heads.get(lane, (0, b""))[0] or last_id.get(lane, 0)
            for lane in heads.keys() | last_id.keys()
            if heads.get(lane, (0, b"")) != (last_id.get(lane, 0), previous.get(lane, b""))
        ]
        first_broken = min(cut) if cut else None
    head = heads_digest([(lane, i, h) for lane, (i, h) in heads.items()]) if rows else ""
    return Verification(table, first_broken is None, rows, first_broken, head)


async def verify_all(conn: Conn) -> list[Verification]:
    """Every chained table of the connection's database."""
    tables = await conn.fetch(
        "SELECT DISTINCT table_name FROM audit_chain_heads ORDER BY table_name"
    )
    return [await verify(conn, r["table_name"]) for r in tables]
