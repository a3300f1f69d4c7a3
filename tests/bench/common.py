"""What every benchmark needs: real servers (embedded unless URLs are given) and timing."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.devstack.embedded import EmbeddedNats, EmbeddedPostgres
from tests.conftest import free_port


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(PostgreSQL server URL, NATS URL) for one benchmark run."""
    folder = Path(tempfile.mkdtemp(prefix="portal-bench-"))
    started: list[EmbeddedPostgres | EmbeddedNats] = []
    try:
        pg_url = os.environ.get("PORTAL_TEST_DATABASE_URL")
        if not pg_url:
            pg = EmbeddedPostgres(folder / "pg", port=free_port())
            pg_url = pg.start()
            started.append(pg)
        nats_url = os.environ.get("PORTAL_TEST_NATS_URL")
        if not nats_url:
            nats = EmbeddedNats(folder / "nats", port=free_port())
            nats_url = nats.start()
            started.append(nats)
        yield pg_url, nats_url
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)
