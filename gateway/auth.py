"""Edge authentication: bearer tokens (verified once, remembered until they expire) and API keys.

Verification itself is ``shared.auth.TokenVerifier``; this module only remembers its answers so the
hot path does not pay for a signature check on every request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.models import ApiKey
from gateway.settings import GatewaySettings
from shared.auth import Principal, TokenVerifier, issue_token
from shared.errors import Unauthorized

MAX_CACHED = 20_000
SECRET_PREFIX = "crp_"


def hash_secret(secret: str) -> str:
    """How an API key secret is stored: its SHA-256 (the secret is 256 random bits, so no salt is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class BearerCache:
    """Verified tokens until their ``exp`` (at most ``max_seconds``); the services verify again anyway."""

    def __init__(self, verifier: TokenVerifier, max_seconds: float = 300.0) -> None:
        self.verifier = verifier
        self.max_seconds = max_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        now = time.time()
        hit = self._cache.get(token)
        if hit is not None and hit[1] > now:
            return hit[0]
        principal = await self.verifier.verify(token)  # raises Unauthorized
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp", now)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[token] = (principal, min(float(exp), now + self.max_seconds))
        return principal


@dataclass(slots=True)
class _Known:
    key_id: str | None           # None: no such (active) key
    principal: Principal | None
    token: str | None
    token_renew_at: float
    until: float


class ApiKeyStore:
    """Looks API keys up by the hash of their secret, and mints the token forwarded in their place."""

    def __init__(self, settings: GatewaySettings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self._cache: dict[str, _Known] = {}

    async def authenticate(self, secret: str) -> tuple[Principal, str]:
        """(principal, bearer token to forward) for an active key, else Unauthorized."""
        digest = hash_secret(secret)
        now = time.monotonic()
        known = self._cache.get(digest)
        if known is None or known.until <= now:
            known = await self._load(digest, now)
        if known.principal is None:
            raise Unauthorized("The API key is not valid", headers={"WWW-Authenticate": "ApiKey"})
        if known.token is None or known.token_renew_at <= now:
            ttl = self.settings.api_key_token_seconds
            known.token = issue_token(self.settings, roles=sorted(known.principal.roles),
                                      governorates=sorted(known.principal.governorates),
                                      sub=known.principal.sub, ttl_seconds=ttl)
            known.token_renew_at = now + ttl / 2
        return known.principal, known.token

    async def _load(self, digest: str, now: float) -> _Known:
        async with self.sessionmaker() as session:
            row = (await session.execute(
                select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
            )).scalars().first()
        until = now + self.settings.api_key_cache_seconds
        if row is None:
            known = _Known(None, None, None, 0.0, until)
        else:
            principal = Principal(sub=f"apikey:{row.id}", roles=frozenset(row.roles),
                                  governorates=frozenset(row.governorates))
            known = _Known(row.id, principal, None, 0.0, until)
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[digest] = known
        return known

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (after it was revoked or rotated)."""
        for digest in [d for d, known in self._cache.items() if known.key_id == key_id]:
            del self._cache[digest]
