"""Verify the hash chain of an append-only audit table (migrations/0002_audit_chain.sql).

Rows are read in id order. Row r is intact when its prev_hash is the previous row's hash (empty
for the first row) and its hash is sha256(prev_hash || <table>_content(r)), recomputed by the
database from the row as it is now. The chain head must name the last row and its hash, so rows
removed from the end are noticed too. The first row that fails is reported: an edited row fails
itself, a deleted row makes the next one fail.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.runtime.db import Conn

CHAINED = ("audit_log", "access_log")
_BATCH = 2000


@dataclass(frozen=True)
class Verification:
    table: str
    valid: bool
    rows: int
    first_broken: int | None  # the id of the first row that fails (or the head's last id)
    head: str  # hex hash of the last row: record it elsewhere to notice a rewritten chain


async def verify(conn: Conn, table: str) -> Verification:
    """Walk `table`'s chain; read-only (SELECT suffices)."""
    if table not in CHAINED:
        raise ValueError(f"{table!r} is not a chained audit table")
    previous = b""
    rows = 0
    first_broken: int | None = None
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        # One snapshot for the rows and the head, so appends during the walk are not breaks.
        cursor = conn.cursor(
            f"SELECT id, prev_hash, hash, sha256(prev_hash || {table}_content(t)) AS expected "
            f"FROM {table} t ORDER BY id",
            prefetch=_BATCH,
        )
        last_id = 0
        async for row in cursor:
            rows += 1
            intact = row["prev_hash"] == previous and row["hash"] == row["expected"]
            if first_broken is None and not intact:
                first_broken = row["id"]
            previous = bytes(row["hash"])
            last_id = row["id"]
        head = await conn.fetchrow(
            "SELECT last_id, last_hash FROM audit_chain_heads WHERE table_name = $1", table
        )
    if head is None:
        raise LookupError(f"{table} has no chain head: are its migrations applied?")
    if first_broken is None and (head["last_id"], bytes(head["last_hash"])) != (last_id, previous):
        first_broken = head["last_id"] or last_id
    return Verification(table, first_broken is None, rows, first_broken, previous.hex())


async def verify_all(conn: Conn) -> list[Verification]:
    """Every chained table of the connection's database."""
    tables = await conn.fetch("SELECT table_name FROM audit_chain_heads ORDER BY table_name")
    return [await verify(conn, r["table_name"]) for r in tables]
