"""Gateway settings: the routing table and every edge limit, from ``CRP_`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from shared import catalog
from shared.settings import CommonSettings

# Paths under this prefix need no token at the gateway (the services decide for themselves).
PUBLIC_PREFIX = "/api/v1/public/"


class GatewaySettings(CommonSettings):
    """What the gateway reads from the environment (``CRP_`` prefix)."""

    service_name: str = "gateway"

    # The routing table, derived from the service list (shared/catalog.py): the services' URLs are
    # CommonSettings.upstreams (a service absent there answers 503); service name -> path prefixes
    # (CRP_ROUTES to override them).
    routes: dict[str, list[str]] = Field(default_factory=lambda: {
        entry.name: list(entry.prefixes) for entry in catalog.SERVICES})

    max_body_bytes: int = 10 * 1024 * 1024      # larger request bodies are refused with 413
    # Longer request targets (path and query) are refused with 414. The proxy client accepts response
    # header lines up to four times this, so an accepted request's `Link` header always fits.
    max_target_bytes: int = 8 * 1024
    connect_timeout_seconds: float = 2.0        # TCP connect to an upstream; exceeded is 504
    read_timeout_seconds: float = 30.0          # upstream silent (or no free connection) this long is 504
    idempotent_retries: int = 1                 # retries on a failed connection, GET/HEAD/OPTIONS/PUT/DELETE only
    down_after_failures: int = 3                # consecutive connection failures that mark an upstream down
    down_seconds: float = 5.0                   # answer 503 at once for this long, then try again
    upstream_pool_size: int = 256               # connections to all upstreams together
    # At most this many requests in flight per service (about a service's database pool); more wait
    # their turn here, first come first served, instead of being interleaved inside the service, which
    # stretches the p99 (gateway/README.md). Raise it for a service with many replicas behind one URL.
    upstream_connections_per_service: int = 16

    rate_limit_per_second: float = 50.0         # per client (token subject, API key or IP); 0 disables
    rate_limit_burst: int = 100
    # Where the buckets live: "database" (the gateway's: shared by every replica) or "memory" (this process
    # only). Default: the database on PostgreSQL, memory on SQLite (one gateway process, `crp dev`).
    rate_limit_store: Literal["memory", "database"] | None = None

    # How long a key stays cached here (another replica may accept a revoked key for this long), and
    # the lifetime of the token minted for an API key caller.
    api_key_cache_seconds: float = 30.0
    # ES256 private key (PEM, P-256) that signs the tokens minted for API keys; unset, one is generated at
    # start, which is fine for one gateway process only: replicas must share a configured key.
    gateway_signing_key: SecretStr | None = None

    openapi_cache_seconds: float = 30.0
    readiness_timeout_seconds: float = 2.0
    hsts_seconds: int = 31536000

    @property
    def shared_rate_limits(self) -> bool:
        """True when the rate-limit buckets are kept in the database (shared by the replicas)."""
        return self.rate_limit_store == "database" if self.rate_limit_store else not self.is_sqlite

    def route_table(self) -> list[tuple[str, str]]:
        """(prefix, service) pairs, longest prefix first."""
        pairs = [(prefix.rstrip("/"), name) for name, prefixes in self.routes.items() for prefix in prefixes]
        return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)
