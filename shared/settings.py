"""Settings: pydantic-settings with the ``CRP_`` prefix, one class per service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import catalog

# Built-in secrets for CRP_ENV=dev only; any other environment refuses to start with them.
DEV_JWT_SECRET = "crp-dev-secret-do-not-use-outside-dev-0123456789abcdef"
DEV_PII_KEY = "crp-dev-pii-key-do-not-use-outside-dev-0123456789abcdef"


class CommonSettings(BaseSettings):
    """What every process of the platform reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="CRP_", extra="ignore")

    env: Literal["dev", "test", "staging", "production"] = "dev"
    service_name: str = "crp"
    data_dir: Path = Path(".crp")
    log_level: str = "INFO"

    # Database: SQLite file per service by default; a PostgreSQL URL gives each service its own schema.
    database_url: str | None = None
    database_schema: str | None = None
    migrate_on_start: bool = True
    # Connections each process keeps open (and how many more it may open under a burst). A request holds one
    # for its whole life: with fewer than the requests in flight, every extra one opened and closed a
    # connection (on SQLite a thread and four PRAGMAs, on PostgreSQL a handshake).
    database_pool_size: int = Field(default=20, ge=1)
    database_max_overflow: int = Field(default=10, ge=0)
    database_read_pool_size: int = Field(default=4, ge=1)  # PostgreSQL: session-free reads (shared.db.Reads)

    # Events
    nats_url: str = "nats://127.0.0.1:4222"
    nats_stream: str = "CRP"
    subject_prefix: str = "crp"
    duplicate_window_seconds: float = 600.0
    # Copies of the stream in a JetStream cluster (3 on the three-node cluster of deploy/k8s); 1 on one server.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
    # Services that consume the stream: the durable consumer's name (default: the service name).
    consumer_durable: str | None = None
    # Attempts at an event on a healthy database before it becomes a dead letter (a database or NATS
    # outage never counts as an attempt).
    consumer_max_attempts: int = 5
    # How long JetStream waits for an ack before redelivering; a held message is kept alive meanwhile.
    consumer_ack_wait_seconds: float = 30.0

    # Tokens
    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_issuer: str = "crp-dev"
    jwt_audience: str = "crp-api"
    jwt_jwks_url: str | None = None
    jwt_algorithms: list[str] = ["HS256", "RS256", "ES256"]

    # Keyed hash for identifiers such as national IDs (never stored in clear). Each stored hash records
    # the chain of key ids it was made with; retired keys stay configured for the chains that use them
    # (`crp pii rotate`, shared.pii).
    pii_key: SecretStr = SecretStr(DEV_PII_KEY)
    pii_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    pii_retired_keys: dict[str, SecretStr] = {}

    cors_origins: list[str] = []

    # Processes serving one service (`crp serve`): on PostgreSQL up to the cores a replica has; SQLite keeps
    # one (one outbox relay per database there).
    server_workers: int = Field(default=1, ge=1)
    # OpenTelemetry: spans are exported over OTLP/HTTP to this endpoint (or the standard
    # OTEL_EXPORTER_OTLP_ENDPOINT) when set; off by default. Needs the `otel` extra.
    otel_exporter_otlp_endpoint: str | None = None

    # Where each service answers (CRP_UPSTREAMS, JSON): the gateway routes there, and a service that asks
    # another over HTTP (e.g. grants asking beneficiaries) finds it here. Default: the service list's ports.
    upstreams: dict[str, str] = Field(default_factory=lambda: {
        name: f"http://127.0.0.1:{catalog.port(name)}" for name in catalog.NAMES})

    # The edge. Absolute URLs (`Link`) are built from the public base URL when it is set, else from the
    # X-Forwarded-Host/-Proto/-Prefix of a trusted proxy, else from the request itself (shared/urls.py).
    public_base_url: str | None = None
    # Direct peers whose X-Forwarded-* headers are believed: addresses or CIDR networks.
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    # The gateway's base URL as the services reach it. Set, services also accept the tokens the gateway
    # mints for API keys (ES256, issuer `crp-gateway`, keys from its /.well-known/jwks.json), and refuse
    # those of a revoked or rotated key (its /.well-known/crp-revocations.json, re-read this often).
    gateway_url: str | None = None
    gateway_issuer: str = "crp-gateway"
    revocations_cache_seconds: float = 2.0

    # Housekeeping: published outbox rows and idempotency keys are deleted after these periods.
    outbox_retention_days: float = 7
    idempotency_retention_days: float = 7
    housekeeping_interval_seconds: float = 600

    @model_validator(mode="after")
    def _pii_key_ids(self) -> CommonSettings:
        if self.pii_key_id in self.pii_retired_keys:
            raise ValueError(f"CRP_PII_KEY_ID {self.pii_key_id!r} is also a retired key id: key ids are never reused")
        for key_id in self.pii_retired_keys:
            if not key_id or ">" in key_id:
                raise ValueError(f"invalid retired PII key id {key_id!r}")
        return self

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> CommonSettings:
        if self.env != "dev":
            if self.jwt_jwks_url is None and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
                raise ValueError("CRP_JWT_SECRET (or CRP_JWT_JWKS_URL) must be set outside CRP_ENV=dev")
            if self.pii_key.get_secret_value() == DEV_PII_KEY:
                raise ValueError("CRP_PII_KEY must be set outside CRP_ENV=dev")
        return self

    # -- derived -----------------------------------------------------------------------------
    @property
    def async_database_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.data_dir}/{{service}}.db"
        url = url.replace("{service}", self.service_name)
        for plain, driver in (
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain):]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")

    @property
    def schema(self) -> str | None:
        """PostgreSQL schema this service owns (None on SQLite)."""
        if self.is_sqlite:
            return None
        return self.database_schema or self.service_name

    @property
    def source(self) -> str:
        """CloudEvents ``source`` of this service's events."""
        return f"/crp/{self.service_name}"
