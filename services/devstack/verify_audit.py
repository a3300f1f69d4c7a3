"""`make verify-audit`: verify the audit hash chains in the databases of `make run`.

The same server `make run` uses (PORTAL_DATABASE_URL, else the embedded PostgreSQL of
PORTAL_DATA_DIR, which must be running) and the same database names.
"""

from __future__ import annotations

import asyncio
import os
import sys

from services.devstack.embedded import EmbeddedPostgres
from services.devstack.stack import SERVICES, StackConfig
from services.runtime.db import with_database
from services.runtime.settings import ConfigError
from services.runtime.verify_audit import check


def main() -> int:
    try:
        config = StackConfig.from_env(os.environ)
    except ConfigError as exc:
        print(f"make verify-audit: {exc}", file=sys.stderr)
        return 2
    server = (
        config.database_url
        or EmbeddedPostgres(config.data_dir / "postgres", port=config.pg_port).url
    )
    urls = [with_database(server, f"{config.database_prefix}{name}") for name in SERVICES]
    return asyncio.run(check(urls))


if __name__ == "__main__":
    sys.exit(main())
