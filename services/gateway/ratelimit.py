"""Per-client sign-in rate limit (identity's lockout protects each account).

The count lives in identity's database (CheckSignInRate), so every gateway replica draws on the
same budget; this side only holds the policy: `rate` attempts per client address per minute.
"""

from __future__ import annotations

from portal.identity.v1 import identity_pb2 as pb
from portal.identity.v1 import identity_pb2_grpc as pb_grpc

WINDOW_SECONDS = 60


class RateLimiter:
    """`rate_per_minute` sign-in attempts per client address, shared by all replicas."""

    def __init__(self, rate_per_minute: int) -> None:
        self.limit = rate_per_minute

    async def retry_after(
        self,
        identity: pb_grpc.IdentityServiceAsyncStub,
        address: str,
        metadata: tuple[tuple[str, str], ...],
    ) -> int | None:
        """Count an attempt from `address`; None when allowed, else the seconds to wait."""
        verdict = await identity.CheckSignInRate(
            pb.CheckSignInRateRequest(
                address=address, limit=self.limit, window_seconds=WINDOW_SECONDS
            ),
            metadata=metadata,
        )
        return None if verdict.allowed else max(1, verdict.retry_after_seconds)
