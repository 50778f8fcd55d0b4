"""Edge authentication: bearer tokens (verified once, remembered until they expire) and API keys.

Verification itself is ``shared.auth.TokenVerifier``; this module only remembers its answers so the
hot path does not pay for a signature check on every request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from gateway.models import ApiKey
from gateway.settings import GatewaySettings
from shared.auth import Principal, TokenVerifier
from shared.db import utcnow
from shared.errors import Unauthorized

MAX_CACHED = 20_000
# A revocation this close before a key was loaded may still postdate the load (the replicas' clocks differ).
CLOCK_SKEW_SECONDS = 5.0
SECRET_PREFIX = "crp_"


def hash_secret(secret: str) -> str:
    """How an API key secret is stored: its SHA-256 (the secret is 256 random bits, so no salt is needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class BearerCache:
    """Verified tokens until their ``exp`` (at most ``max_seconds``); the services verify again anyway."""

    def __init__(self, verifier: TokenVerifier, max_seconds: float = 300.0) -> None:
        self.verifier = verifier
        self.max_seconds = max_seconds
        self._cache: dict[str, tuple[Principal, float]] = {}

    def is_cached(self, token: str) -> bool:
        hit = self._cache.get(token)
        return hit is not None and hit[1] > time.time()

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
    loaded_at: float             # wall clock, to compare with revocation times


class ApiKeyStore:
    """Looks API keys up by the hash of their secret, and mints the token forwarded in their place.

    A key is remembered for ``CRP_API_KEY_CACHE_SECONDS``, but the database's list of recent revocations and
    rotations (read at most once a second, whichever replica made them) is consulted before a remembered
    key is used: a key revoked through one replica is refused by every other within about a second.
    """

    def __init__(self, settings: GatewaySettings, sessionmaker: async_sessionmaker[AsyncSession],
                 signer: SigningKey) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.signer = signer
        self._cache: dict[str, _Known] = {}
        self._revocations: tuple[float, dict[str, float], bytes] | None = None  # (until, by key id, document)

    def is_cached(self, secret: str) -> bool:
        """True when ``secret`` is an active key this process knows (no database look-up needed)."""
        known = self._cache.get(hash_secret(secret))
        return known is not None and known.principal is not None and known.until > time.monotonic()

    async def authenticate(self, secret: str) -> tuple[Principal, str]:
        """(principal, bearer token to forward) for an active key, else Unauthorized."""
        digest = hash_secret(secret)
        now = time.monotonic()
        known = self._cache.get(digest)
        if known is None or known.until <= now:
            known = await self._load(digest, now)
        elif known.key_id is not None:
            since = (await self._revoked())[0].get(known.key_id)
            if since is not None and since >= known.loaded_at - CLOCK_SKEW_SECONDS:
                known = await self._load(digest, now)  # revoked or rotated since: ask the database again
        if known.principal is None:
            raise Unauthorized("The API key is not valid", headers={"WWW-Authenticate": "ApiKey"})
        if known.token is None or known.token_renew_at <= now:
            # Valid no longer than the key stays cached here, renewed at half-life: a revoked key's
            # tokens die with the cache entry, and the services refuse them sooner (/.well-known/crp-revocations.json).
            ttl = self.settings.api_key_cache_seconds
            assert known.key_id is not None
            known.token = self.signer.mint(self.settings, known.principal, known.key_id, ttl)
            known.token_renew_at = now + ttl / 2
        return known.principal, known.token

    async def _load(self, digest: str, now: float) -> _Known:
        async with self.sessionmaker() as session:
            row = (await session.execute(
                select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
            )).scalars().first()
        until = now + self.settings.api_key_cache_seconds
        if row is None:
            known = _Known(None, None, None, 0.0, until, time.time())
        else:
            principal = Principal(sub=f"apikey:{row.id}", roles=frozenset(row.roles),
                                  governorates=frozenset(row.governorates))
            known = _Known(row.id, principal, None, 0.0, until, time.time())
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[digest] = known
        return known

    def forget(self, key_id: str) -> None:
        """Drop a key from this process's cache (after it was revoked or rotated)."""
        for digest in [d for d, known in self._cache.items() if known.key_id == key_id]:
            del self._cache[digest]
        self._revocations = None

    async def revocations(self) -> bytes:
        """``{"api_keys": {id: unix time}}``: tokens minted for that key at or before that time no longer
        hold (the key was revoked or rotated then). Only what a still-unexpired token could be affected
        by is listed; read from the database at most once a second."""
        return (await self._revoked())[1]

    async def _revoked(self) -> tuple[dict[str, float], bytes]:
        now = time.monotonic()
        if self._revocations is not None and self._revocations[0] > now:
            return self._revocations[1], self._revocations[2]
        horizon = utcnow() - timedelta(seconds=self.settings.api_key_cache_seconds + 60)
        async with self.sessionmaker() as session:
            rows = (await session.execute(select(ApiKey).where(
                or_(ApiKey.revoked_at > horizon, ApiKey.rotated_at > horizon)))).scalars().all()  # type: ignore[operator]
        revoked = {}
        for row in rows:
            times = [t for t in (row.revoked_at, row.rotated_at) if t is not None and t > horizon]
            revoked[row.id] = max(as_utc(t).timestamp() for t in times)
        document = json.dumps({"api_keys": revoked}).encode()
        self._revocations = (now + 1.0, revoked, document)
        return revoked, document


class SigningKey:
    """The gateway's own ES256 key: it signs the tokens minted for API keys, and its public half is
    published as a JWKS (``/.well-known/jwks.json``) that the services trust for issuer ``crp-gateway``."""

    def __init__(self, pem: str | None) -> None:
        if pem:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                raise ValueError("CRP_GATEWAY_SIGNING_KEY must be an EC P-256 private key (PEM)")
        else:  # one per process: replicas must share a configured key
            key = ec.generate_private_key(ec.SECP256R1())
        self.private = key
        jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
        self.kid = hashlib.sha256(json.dumps([jwk["crv"], jwk["x"], jwk["y"]]).encode()).hexdigest()[:16]
        self.jwks = json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}]}).encode()

    def mint(self, settings: GatewaySettings, principal: Principal, key_id: str, ttl_seconds: float) -> str:
        now = time.time()  # a fraction of a second matters against a rotation's time
        claims = {"sub": principal.sub, "roles": sorted(principal.roles),
                  "governorates": sorted(principal.governorates), "api_key": key_id,
                  "iat": now, "exp": int(now + ttl_seconds), "iss": settings.gateway_issuer,
                  "aud": settings.jwt_audience}
        return jwt.encode(claims, self.private, algorithm="ES256", headers={"kid": self.kid})
