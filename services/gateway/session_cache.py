"""Resolved sessions kept for a few seconds, so most requests need no call to identity.

The rules that keep it honest:
* An entry lives at most `ttl` seconds and never past the session's own end (`expires_at`,
  which identity gives as the earlier of the idle and the absolute expiry).
* Entries are used only while `enabled`: while identity's change stream (WatchSessionChanges,
  see services.gateway.session_watch) is open and said it is watching. Without it, every
  request asks identity, as if there were no cache.
* `flush()` forgets everything and bumps the generation. A lookup notes the generation before
  it asks identity and stores the answer only if no flush happened meanwhile, so a change that
  raced the lookup never leaves the answer read before it behind.
* Keys are SHA-256 digests of the tokens: the raw token is never held as a key.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from portal.identity.v1 import identity_pb2 as pb

# identity moves a session's last-seen time at most this often (sessions.TOUCH_INTERVAL): a
# cache no longer than this does not make idle timeouts any less precise than they are.
DEFAULT_TTL = 15.0
MAX_ENTRIES = 10_000


def token_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class SessionCache:
    ttl: float = DEFAULT_TTL  # seconds; 0 disables the cache
    max_entries: int = MAX_ENTRIES
    clock: Callable[[], float] = time.monotonic  # a test seam
    wall_clock: Callable[[], float] = time.time  # what session.expires_at is measured against
    enabled: bool = False
    generation: int = 0
    _entries: dict[bytes, tuple[pb.Session, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> pb.Session | None:
        """The session cached for `token`, or None (not cached, expired, or cache not in use)."""
        if not self.enabled or self.ttl <= 0:
            return None
        key = token_key(token)
        found = self._entries.get(key)
        if found is None:
            return None
        session, until = found
        if self.clock() >= until:
            del self._entries[key]
            return None
        return session

    def put(self, token: str, session: pb.Session, generation: int) -> None:
        """Keep `session`, looked up when the generation was `generation`, unless a flush
        happened since (or the cache is not in use)."""
        if not self.enabled or self.ttl <= 0 or generation != self.generation:
            return
        left = session.expires_at.ToNanoseconds() / 1e9 - self.wall_clock()
        life = min(self.ttl, left)
        if life <= 0:
            return
        if len(self._entries) >= self.max_entries:
            # Dicts keep insertion order: the first entry is the oldest one stored.
            del self._entries[next(iter(self._entries))]
        self._entries[token_key(token)] = (session, self.clock() + life)

    def flush(self) -> None:
        """Forget everything; answers to lookups already under way will not be kept."""
        self._entries.clear()
        self.generation += 1

    def trust(self, enabled: bool) -> None:
        """Start (identity watches for us) or stop (the stream is gone) using entries; both
        begin from an empty cache."""
        self.flush()
        self.enabled = enabled
