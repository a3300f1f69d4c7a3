"""`python -m services.runtime.migrate <service>`: apply a service's migrations as the owner and
grant its runtime role, then exit (a Kubernetes init container: the service's own container
then holds only the runtime role's URL).

Reads PORTAL_MIGRATION_DATABASE_URL (the owner) and PORTAL_DATABASE_URL (the runtime role the
service will connect as; its role is asked from the server).
"""

from __future__ import annotations

import asyncio
import os
import sys
from importlib import resources

import asyncpg

from services.runtime import db
from services.runtime.settings import DEFAULT_PORTS


async def run(service: str, owner_dsn: str, runtime_dsn: str) -> list[str]:
    folder = resources.files(f"services.{service}") / "migrations"
    migrations = db.runtime_migrations() + db.load_migrations(service, folder)
    role_conn = await db.connect(runtime_dsn)
    try:
        role: str = await role_conn.fetchval("SELECT current_user")
    finally:
        await role_conn.close()
    owner = await db.connect(owner_dsn)
    try:
        return await db.migrate(owner, migrations, runtime_role=role)
    finally:
        await owner.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in DEFAULT_PORTS:
        print(
            f"usage: python -m services.runtime.migrate {'|'.join(DEFAULT_PORTS)}", file=sys.stderr
        )
        return 2
    owner, runtime = (
        os.environ.get(k, "").strip()
        for k in ("PORTAL_MIGRATION_DATABASE_URL", "PORTAL_DATABASE_URL")
    )
    if not owner or not runtime:
        print("PORTAL_MIGRATION_DATABASE_URL and PORTAL_DATABASE_URL are required", file=sys.stderr)
        return 2
    try:
        applied = asyncio.run(run(argv[0], owner, runtime))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"portal-{argv[0]} migrate: {exc}", file=sys.stderr)
        return 1
    print(f"portal-{argv[0]} migrate: {len(applied)} applied, runtime role granted")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
