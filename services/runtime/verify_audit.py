"""`python -m services.runtime.verify_audit [DATABASE_URL ...]`: verify the audit hash chains.

Checks every chained table (identity's audit_log, the access_log of forms and scheduling) of
each database given, or of PORTAL_DATABASE_URL; SELECT privilege suffices, so a service's own
runtime role can run it (`kubectl exec deploy/identity -- python -m services.runtime.verify_audit`).
Prints one line per table and exits 0 when all are intact, 1 when one is broken (naming the
first broken row), 2 when a database cannot be checked. `make verify-audit` runs it over the
databases of `make run` (services.devstack.verify_audit).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

import asyncpg

from services.runtime.audit_chain import Verification, verify_all


def describe(database: str, result: Verification) -> str:
    where = f"{database} {result.table}"
    if result.valid:
        return f"{where}: valid, {result.rows} rows, head {result.head[:16] or '(empty)'}"
    return f"{where}: BROKEN at id {result.first_broken} ({result.rows} rows)"


async def check(urls: Sequence[str]) -> int:
    code = 0
    for url in urls:
        database = urlsplit(url).path.lstrip("/") or "(default database)"
        try:
            conn = await asyncpg.connect(url)
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"{database}: cannot connect ({exc})", file=sys.stderr)
            code = 2
            continue
        try:
            results = await verify_all(conn)
        except asyncpg.PostgresError as exc:
            print(f"{database}: cannot verify ({exc})", file=sys.stderr)
            code = 2
            continue
        finally:
            await conn.close()
        if not results:
            print(f"{database}: no audit chain (migrations not applied?)", file=sys.stderr)
            code = 2
        for result in results:
            print(describe(database, result))
            if not result.valid and code == 0:
                code = 1
    return code


def main(argv: Sequence[str]) -> int:
    urls = list(argv) or [u for u in [os.environ.get("PORTAL_DATABASE_URL", "")] if u]
    if not urls:
        print("usage: python -m services.runtime.verify_audit DATABASE_URL ...", file=sys.stderr)
        return 2
    return asyncio.run(check(urls))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
