"""Bearer tokens: verification with PyJWT, the principal, and role guards as dependencies."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import jwt
from fastapi import Depends, Request

from shared.errors import Forbidden, Unauthorized
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


class TokenVerifier:
    """Verifies HS256 tokens with the shared secret, or RS256/ES256 against an OIDC issuer's JWKS."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True) if settings.jwt_jwks_url else None
        self._options = {"require": ["exp", "sub", "iss", "aud"]}

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        return jwt.decode(token, key=key, algorithms=algorithms, audience=self.settings.jwt_audience,
                          issuer=self.settings.jwt_issuer, options=self._options, leeway=5)

    def verify_sync(self, token: str) -> Principal:
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = [a for a in self.settings.jwt_algorithms if a in ("RS256", "ES256")]
                claims = self._decode(token, key, algorithms)
            else:
                claims = self._decode(token, self.settings.jwt_secret.get_secret_value(), ["HS256"])
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"Invalid token: {exc}") from None
        return principal_from_claims(claims)

    async def verify(self, token: str) -> Principal:
        if self._jwks is not None:  # a JWKS fetch is blocking I/O
            return await anyio.to_thread.run_sync(self.verify_sync, token)
        return self.verify_sync(token)


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


async def current_principal(request: Request) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    return await verifier.verify(bearer_token(request.headers.get("authorization")))


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: str) -> Any:
    """An ``Annotated`` principal that must hold one of ``roles`` (``admin`` always passes)."""
    allowed = frozenset(roles) | {"admin"}
    unknown = allowed - set(ROLES)
    assert not unknown, f"unknown roles {unknown}"

    async def guard(principal: CurrentPrincipal) -> Principal:
        if not principal.has_any(allowed):
            raise Forbidden(f"This action needs one of the roles: {', '.join(sorted(allowed))}")
        return principal

    return Annotated[Principal, Depends(guard)]
