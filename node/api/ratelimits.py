"""Rate limits, in this process: what one member may append to the audit log, and failed sign-ins.

Two budgets, each a token bucket per key:

- actions a member triggers that append audit events (consent changes, rights requests, churn
  scores, link codes and links), per member: the audit log is append-only, so without a budget any
  member could grow it without limit;
- failed authentications, per presented credential: a client retrying a bad token is told to wait.

Past a budget the answer is 429 with ``Retry-After``. The buckets live in memory: a restart
refills them, which is fine for a limit on abuse (they are not a record of anything).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from node.api.problems import Problem
from node.core.settings import RateLimits

#: Keys kept at the most per budget; past it, the buckets already full again are forgotten.
MAX_KEYS = 100_000


class RateLimiter:
    """A token bucket per key: ``per_minute`` tokens a minute, at most ``per_minute`` at once."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.rate)

    def wait(self, key: str) -> float:
        """Seconds until ``key`` may act again (0: it may now), without spending anything."""
        with self._lock:
            tokens = self._level(key, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: str) -> float:
        """Spend one token of ``key``'s budget; return 0, or the seconds to wait when there is none left."""
        with self._lock:
            now = self.clock()
            tokens = self._level(key, now)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return (1 - tokens) / self.rate
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > MAX_KEYS:
                self._forget_full(now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.capacity]
        for k in full:
            del self._buckets[k]


@dataclass
class Limiters:
    """The app's two budgets."""

    member_writes: RateLimiter
    failed_auth: RateLimiter

    @classmethod
    def from_settings(cls, limits: RateLimits) -> Limiters:
        """The budgets a node's ``rate_limits`` setting sets."""
        return cls(RateLimiter(limits.member_writes_per_minute), RateLimiter(limits.failed_auth_per_minute))


def too_many(seconds: float, what: str) -> Problem:
    """The 429 for a spent budget, with when to come back."""
    wait = max(1, math.ceil(seconds))
    detail = f"too many {what}: retry in {wait} s"
    return Problem(429, detail, reason_code="rate_limited", headers={"Retry-After": str(wait)})


def credential_key(credential: str) -> str:
    """The key a presented credential's failures are counted under (never the credential itself)."""
    return hashlib.sha256(credential.encode()).hexdigest()[:32]
