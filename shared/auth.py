"""Bearer tokens: verification with PyJWT, the principal, and role guards as dependencies."""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import jwt
from fastapi import Depends, Request

from shared.errors import BadRequest, Forbidden, ServiceUnavailable, Unauthorized
from shared.settings import CommonSettings

ROLES = (
    "admin", "programme_manager", "case_worker", "me_officer", "cfm_officer",
    "psea_focal_point", "partner_system", "viewer",
)
ALL = "*"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: subject, roles and the governorates (admin1 P-codes) they may see."""

    sub: str
    roles: frozenset[str]
    governorates: frozenset[str]

    @property
    def all_governorates(self) -> bool:
        return ALL in self.governorates

    def has_any(self, roles: Iterable[str]) -> bool:
        return not self.roles.isdisjoint(roles)

    def sees(self, governorate_pcode: str | None) -> bool:
        """True when a record located in ``governorate_pcode`` is within this principal's scope."""
        if self.all_governorates:
            return True
        return governorate_pcode is not None and governorate_pcode in self.governorates

    def scope_filter(self) -> frozenset[str] | None:
        """Governorates to filter lists on, or None for all."""
        return None if self.all_governorates else self.governorates


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires_at: float                    # the token's ``exp``: never trusted a moment longer
    claims: dict[str, Any] | None        # kept for a gateway token: its revocation is checked on every use


class TokenVerifier:
    """Verifies HS256 tokens with the shared secret, or RS256/ES256 against an OIDC issuer's JWKS; and in
    either mode, when ``CRP_GATEWAY_URL`` is set, the ES256 tokens the gateway mints for API keys.

    A token verified once is remembered until it expires (its ``exp``; at most ``CACHE_SIZE`` tokens): clients
    send the same token with every request, and decoding and checking its signature again each time was a
    large share of a fast request. A gateway token's revocation is still checked on every request.
    """

    CACHE_SIZE = 10_000

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True) if settings.jwt_jwks_url else None
        self._options = {"require": ["exp", "sub", "iss", "aud"]}
        self._gateway: GatewayTrust | None = GatewayTrust(settings) if settings.gateway_url else None
        self._verified: dict[str, _Verified] = {}
        self._verified_lock = threading.Lock()  # verify_sync also runs in worker threads

    def _decode(self, token: str, key: Any, algorithms: list[str], issuer: str) -> dict[str, Any]:
        return jwt.decode(token, key=key, algorithms=algorithms, audience=self.settings.jwt_audience,
                          issuer=issuer, options=self._options, leeway=5)

    def _from_gateway(self, token: str) -> bool:
        if self._gateway is None:
            return False
        try:
            return jwt.decode(token, options={"verify_signature": False}).get("iss") == self.settings.gateway_issuer
        except jwt.PyJWTError:
            return False

    def verify_sync(self, token: str) -> Principal:
        known = self._known(token)
        if known is not None:
            if known.claims is not None:
                assert self._gateway is not None
                self._gateway.check_not_revoked(known.claims)
            return known.principal
        gateway_claims = None
        try:
            if self._gateway is not None and self._from_gateway(token):
                key = self._gateway.jwks.get_signing_key_from_jwt(token).key
                claims = gateway_claims = self._decode(token, key, ["ES256"], self.settings.gateway_issuer)
                self._gateway.check_not_revoked(claims)
            elif self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = [a for a in self.settings.jwt_algorithms if a in ("RS256", "ES256")]
                claims = self._decode(token, key, algorithms, self.settings.jwt_issuer)
            else:
                claims = self._decode(token, self.settings.jwt_secret.get_secret_value(), ["HS256"],
                                      self.settings.jwt_issuer)
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The token has expired") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("The token's signature is not valid") from None
        except jwt.DecodeError:  # not a JWT at all: never echo the decoder's complaint
            raise Unauthorized("Malformed token") from None
        except jwt.PyJWKClientError:
            raise Unauthorized("The token is not signed by a known key") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}") from None
        principal = principal_from_claims(claims)
        self._remember(token, _Verified(principal, float(claims["exp"]), gateway_claims))
        return principal

    def _known(self, token: str) -> _Verified | None:
        known = self._verified.get(token)
        if known is None:
            return None
        if time.time() >= known.expires_at:
            self._verified.pop(token, None)
            return None
        return known

    def _remember(self, token: str, verified: _Verified) -> None:
        with self._verified_lock:
            if len(self._verified) >= self.CACHE_SIZE:  # drop the oldest (dicts keep insertion order)
                self._verified.pop(next(iter(self._verified)), None)
            self._verified[token] = verified

    async def verify(self, token: str) -> Principal:
        known = self._known(token)
        if known is not None and (known.claims is None or self._gateway is None
                                  or not self._gateway.needs_fetch()):
            return self.verify_sync(token)  # no I/O: remembered, and the revocation list (if any) is fresh
        if self._jwks is not None or self._from_gateway(token):  # a key or revocation fetch is blocking I/O
            return await anyio.to_thread.run_sync(self.verify_sync, token)
        return self.verify_sync(token)


class GatewayTrust:
    """The gateway's signing keys and its list of revoked API keys, read from ``CRP_GATEWAY_URL``.

    A token minted for an API key carries the key's id (``api_key``) and when it was minted (``iat``);
    the gateway lists, per revoked or rotated key, the moment since when it no longer holds. The list is
    re-read at most every ``CRP_REVOCATIONS_CACHE_SECONDS``: revocation reaches every service within that.
    """

    def __init__(self, settings: CommonSettings) -> None:
        assert settings.gateway_url
        base = settings.gateway_url.rstrip("/")
        self.jwks = jwt.PyJWKClient(f"{base}/.well-known/jwks.json", cache_keys=True)
        self.revocations_url = f"{base}/.well-known/crp-revocations.json"
        self.cache_seconds = settings.revocations_cache_seconds
        self._revoked: dict[str, float] = {}
        self._fetched_at = -math.inf
        self._lock = threading.Lock()

    def needs_fetch(self) -> bool:
        """Whether the next check reads the revocation list over HTTP (blocking I/O)."""
        return time.monotonic() - self._fetched_at >= self.cache_seconds

    def revoked(self) -> dict[str, float]:
        with self._lock:
            if time.monotonic() - self._fetched_at >= self.cache_seconds:
                try:
                    with urllib.request.urlopen(self.revocations_url, timeout=2) as response:
                        self._revoked = {str(k): float(v) for k, v in json.load(response)["api_keys"].items()}
                except (OSError, ValueError, KeyError, TypeError, AttributeError):
                    raise ServiceUnavailable("API key revocations cannot be checked; retry later",
                                             headers={"Retry-After": "1"}) from None
                self._fetched_at = time.monotonic()
            return self._revoked

    def check_not_revoked(self, claims: dict[str, Any]) -> None:
        key_id = claims.get("api_key")
        if not isinstance(key_id, str):
            raise Unauthorized("Invalid token: no api_key claim")
        since = self.revoked().get(key_id)
        if since is not None and float(claims.get("iat", 0)) <= since:
            raise Unauthorized("The API key this token was issued for has been revoked or rotated")


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    roles = claims.get("roles") or []
    governorates = claims.get("governorates") or []
    if not isinstance(roles, list) or not isinstance(governorates, list):
        raise Unauthorized("Invalid token: roles and governorates must be lists")
    return Principal(sub=str(claims["sub"]), roles=frozenset(map(str, roles)),
                     governorates=frozenset(map(str, governorates)))


def issue_token(
    settings: CommonSettings, *, roles: Iterable[str], governorates: Iterable[str] = (ALL,),
    sub: str | None = None, ttl_seconds: int = 8 * 3600,
) -> str:
    """A token from the development issuer (HS256 with CRP_JWT_SECRET)."""
    now = int(time.time())
    claims = {
        "sub": sub or f"dev-{uuid.uuid4().hex[:8]}", "roles": list(roles),
        "governorates": list(governorates), "iat": now, "exp": now + ttl_seconds,
        "iss": settings.jwt_issuer, "aud": settings.jwt_audience,
    }
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("The Authorization header must be 'Bearer <token>'")
    return token.strip()


def single_authorization(values: list[str]) -> str | None:
    """The one ``Authorization`` header, or None; more than one is a 400: which counts must not depend
    on who reads them (a proxy may take the last, a service the first)."""
    if len(values) > 1:
        raise BadRequest("More than one Authorization header", slug="ambiguous-credentials")
    return values[0] if values else None


async def current_principal(request: Request) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.verify(bearer_token(single_authorization(request.headers.getlist("authorization"))))


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str) -> Any:
    """An ``Annotated`` principal that must hold one of ``roles`` (``admin`` always passes)."""
    allowed = frozenset(roles) | {"admin"}
    unknown = allowed - set(ROLES)
    assert not unknown, f"unknown roles {unknown}"

    async def guard(request: Request) -> Principal:
        # The token is read here rather than through a CurrentPrincipal sub-dependency: FastAPI's cost is per
        # dependency, and this one is on almost every route (a route that also asks for the principal gets it
        # from the verifier's cache).
        principal = await current_principal(request)
        if not principal.has_any(allowed):
            raise Forbidden(f"This action needs one of the roles: {', '.join(sorted(allowed))}")
        return principal

    guard.allowed_roles = allowed  # type: ignore[attr-defined]  # read by roles_of (the OpenAPI's x-roles)
    return Annotated[Principal, Depends(guard)]


def roles_of(dependant: Any) -> list[str] | None:
    """The roles an operation admits, from its dependencies: sorted role names (one ``require_roles`` guard, or
    the intersection of several), ``["*"]`` when any valid token will do, None when no token is needed.
    Shown in the OpenAPI as ``x-roles``, so the authorisation matrix is generated rather than hand-listed."""
    allowed: frozenset[str] | None = None
    authenticated = False
    stack = [dependant]
    while stack:
        node = stack.pop()
        call = getattr(node, "call", None)
        if call is current_principal:
            authenticated = True
        if (roles := getattr(call, "allowed_roles", None)) is not None:
            authenticated = True
            allowed = roles if allowed is None else allowed & roles
        stack.extend(node.dependencies)
    if allowed is not None:
        return sorted(allowed)
    return [ALL] if authenticated else None
