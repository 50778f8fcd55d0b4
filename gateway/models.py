"""The gateway's own table: API keys for partner systems (only the hash of each secret is kept)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from shared.db import utcnow


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    key_prefix: str = Field(max_length=16)            # the secret's first characters, to recognise it
    key_hash: str = Field(max_length=64, unique=True)  # sha256 of the secret
    roles: list[str] = Field(sa_column=Column(JSON, nullable=False))
    governorates: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None


class RateLimitBucket(SQLModel, table=True):
    """One client's token bucket, shared by every gateway replica (``gateway.limits.SharedRateLimiter``)."""

    __tablename__ = "rate_limits"

    client: str = Field(primary_key=True, max_length=200)  # sub:<subject>, ip:<address>, or a hash of a longer one
    tokens: float
    updated_at: float = Field(index=True)  # seconds since the epoch, on the database's clock
    granted: bool  # whether the latest hit took a token (returned by the same atomic upsert)


GATEWAY_TABLES = (ApiKey, RateLimitBucket)
