"""Per-client rate limiting: a token bucket per token subject, API key or IP address.

Two stores with the same semantics: ``RateLimiter`` keeps the buckets in this process (one gateway
process: ``crp dev``), ``SharedRateLimiter`` in the gateway's database, so that every replica takes from
the same bucket (``CRP_RATE_LIMIT_STORE``; by default the database on PostgreSQL, memory on SQLite).
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from prometheus_client import Counter
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.errors import TooManyRequests

log = logging.getLogger("crp.gateway.limits")

LIMITED = Counter("crp_gateway_rate_limited_total", "Requests refused with 429")
MAX_CLIENTS = 100_000


class RateLimiter:
    """``rate`` requests a second on average, bursts of up to ``burst``; ``rate <= 0`` disables it."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self._buckets: dict[str, list[float]] = {}  # client -> [tokens, last refill]

    async def check(self, client: str) -> None:
        """Raise 429 if ``client`` has no token left, without taking one."""
        bucket = self._buckets.get(client)
        if self.rate > 0 and bucket is not None:
            tokens = min(self.burst, bucket[0] + (time.monotonic() - bucket[1]) * self.rate)
            if tokens < 1:
                self._refuse(tokens)

    async def hit(self, client: str) -> None:
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


# The database's clock, in seconds since the epoch: the same for every replica.
_NOW = {"postgresql": "extract(epoch from clock_timestamp())",
        "sqlite": "((julianday('now') - 2440587.5) * 86400.0)"}
_LEAST = {"postgresql": "LEAST", "sqlite": "MIN"}
_GREATEST = {"postgresql": "GREATEST", "sqlite": "MAX"}


class SharedRateLimiter(RateLimiter):
    """The same token buckets in the gateway's database (table ``rate_limits``): a hit is one atomic upsert
    that refills the bucket by the time passed on the database's clock and takes a token if there is one,
    so concurrent hits through any number of replicas never take more than the bucket holds."""

    PRUNE_EVERY_SECONDS = 60.0

    def __init__(self, rate: float, burst: int, engine: AsyncEngine) -> None:
        super().__init__(rate, burst)
        # One statement per hit, each its own transaction: no BEGIN/COMMIT round trips around it.
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        dialect = engine.dialect.name
        now, least, greatest = _NOW[dialect], _LEAST[dialect], _GREATEST[dialect]
        refilled = f"{least}(:burst, b.tokens + {greatest}(0, {now} - b.updated_at) * :rate)"
        self._hit = text(
            f"INSERT INTO rate_limits AS b (client, tokens, updated_at, granted) "
            f"VALUES (:client, :burst - 1, {now}, true) "
            f"ON CONFLICT (client) DO UPDATE SET "
            f"tokens = CASE WHEN {refilled} >= 1 THEN {refilled} - 1 ELSE {refilled} END, "
            f"granted = ({refilled} >= 1), updated_at = {greatest}(b.updated_at, {now}) "
            f"RETURNING tokens, granted")
        self._check = text(f"SELECT {refilled} FROM rate_limits AS b WHERE b.client = :client")
        self._prune_stmt = text(f"DELETE FROM rate_limits WHERE updated_at < {now} - :full_after")
        self._pruned_at = time.monotonic()

    @staticmethod
    def _key(client: str) -> str:
        return client if len(client) <= 200 else "h:" + hashlib.sha256(client.encode()).hexdigest()

    async def check(self, client: str) -> None:
        if self.rate <= 0:
            return
        async with self.engine.connect() as conn:
            tokens = (await conn.execute(self._check, {"client": self._key(client), "rate": self.rate,
                                                       "burst": self.burst})).scalar()
        if tokens is not None and tokens < 1:
            self._refuse(tokens)

    async def hit(self, client: str) -> None:
        if self.rate <= 0:
            return
        async with self.engine.connect() as conn:
            tokens, granted = (await conn.execute(self._hit, {"client": self._key(client), "rate": self.rate,
                                                              "burst": self.burst})).one()
            if time.monotonic() - self._pruned_at > self.PRUNE_EVERY_SECONDS:
                self._pruned_at = time.monotonic()
                # Buckets full again are indistinguishable from new ones.
                await conn.execute(self._prune_stmt, {"full_after": self.burst / self.rate})
        if not granted:
            self._refuse(tokens)
