"""`make bench`: throughput as ratios to raw baselines measured in the same run.

python -m tests.bench [relay|identity|portal|scheduling|forms ...]
"""

from __future__ import annotations

import asyncio
import sys

from tests.bench import forms, identity, portal, relay, scheduling
from tests.bench.common import servers

BENCHES = {
    "relay": relay.run,
    "identity": identity.run,
    "portal": portal.run,
    "scheduling": scheduling.run,
    "forms": forms.run,
}
TARGETS = {
    "relay": "relay publish rate / raw JetStream publish-with-ack",
    "identity": "sign-in ratio >= 0.8 (vs raw argon2 verify); search p95 <= 20 ms at 100k",
    "portal": "GET /api/v1/portal/me at 32 clients / raw composite >= 0.5; CPU ms per request",
    "scheduling": "through the gateway: find p95 <= 20 ms (100 providers x 90 days, 60% "
    "booked); booking / raw booking transactions >= 0.25; 10,000 contested bookings -> 0 "
    "overlaps (grpc_: straight to the service)",
    "forms": "answer save p95 <= 20 ms at 10,000 charts through the gateway (PUT .../answers); "
    "booked -> visit form in the patient's GET /api/v1/portal/forms p99 <= 100 ms",
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
        return 2
    with servers() as (pg_url, nats_url):
        for name in chosen:
            results = asyncio.run(BENCHES[name](pg_url, nats_url))
            print(f"\n{name}: {TARGETS[name]}")
            for key, value in results.items():
                print(f"  {key:28s} {value:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
