"""Per-key rate limiting: one token bucket per API key.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a request
takes one. A client that keeps within the rate is never refused, and one that bursts is
told, with ``Retry-After``, when the next token will be there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from trailkeeper.api.errors import RateLimited

# Generous: a busy producer sending single events (hundreds a second) is never refused; the
# limit is there to stop a runaway loop, not to meter normal use.
DEFAULT_RATE = 500.0
DEFAULT_BURST = 1000


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """Take a token: 0.0 when one was there, else the seconds until one will be."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("the rate must be positive and the burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> None:
        """Let one request of ``key_id`` through, or raise :class:`RateLimited`."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = TokenBucket(self.rate, self.burst, self.burst, now)
            wait = bucket.take(now)
        if wait > 0.0:
            raise RateLimited(wait)
