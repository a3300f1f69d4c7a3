"""Growing delays between retries of something that is down (database, broker, stream)."""

from __future__ import annotations


class Backoff:
    """0.2 s, 0.4 s, 0.8 s … up to `most`; `reset()` after a success."""

    def __init__(self, first: float = 0.2, most: float = 5.0) -> None:
        self.first = first
        self.most = most
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(delay * 2, self.most)
        return delay

    def reset(self) -> None:
        self._next = self.first
