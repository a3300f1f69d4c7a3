"""Per-client sign-in rate limit at the gateway (identity's lockout protects each account)."""

from __future__ import annotations

import time
from collections import OrderedDict


class RateLimiter:
    """A token bucket per key: `rate` attempts per minute, bursts up to `rate`."""

    def __init__(self, rate_per_minute: int, *, max_keys: int = 100_000) -> None:
        self.capacity = float(rate_per_minute)
        self.refill_per_second = rate_per_minute / 60.0
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)  # forget the least recently seen client
        return allowed

    def retry_after(self, key: str) -> int:
        tokens, _ = self._buckets.get(key, (self.capacity, 0.0))
        return max(1, int((1.0 - tokens) / self.refill_per_second) + 1)
