"""Per-client rate limiting: a token bucket per token subject, API key or IP address."""

from __future__ import annotations

import math
import time

from prometheus_client import Counter

from shared.errors import TooManyRequests

LIMITED = Counter("crp_gateway_rate_limited_total", "Requests refused with 429")
MAX_CLIENTS = 100_000


class RateLimiter:
    """``rate`` requests a second on average, bursts of up to ``burst``; ``rate <= 0`` disables it."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self._buckets: dict[str, list[float]] = {}  # client -> [tokens, last refill]

    def check(self, client: str) -> None:
        """Raise 429 if ``client`` has no token left, without taking one."""
        bucket = self._buckets.get(client)
        if self.rate > 0 and bucket is not None:
            tokens = min(self.burst, bucket[0] + (time.monotonic() - bucket[1]) * self.rate)
            if tokens < 1:
                self._refuse(tokens)

    def hit(self, client: str) -> None:
        """Take one token for ``client``, or raise 429 with ``Retry-After``."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_CLIENTS:
                self._prune(now)
            bucket = self._buckets[client] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1:
            bucket[0] = tokens - 1
            return
        bucket[0] = tokens
        self._refuse(tokens)

    def _refuse(self, tokens: float) -> None:
        LIMITED.inc()
        retry_after = max(1, math.ceil((1 - tokens) / self.rate))
        raise TooManyRequests(f"Too many requests; retry in {retry_after} s", retry_after=retry_after,
                              headers={"Retry-After": str(retry_after)})

    def _prune(self, now: float) -> None:
        """Forget clients whose bucket has refilled (they are indistinguishable from new ones)."""
        full_after = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < full_after}
