"""API key management for partner systems: create, list, rotate, revoke (admin only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlmodel import select

from gateway.auth import hash_secret, new_secret
from gateway.models import ApiKey
from shared.auth import require_roles
from shared.db import SessionDep, UtcDatetime, after_commit, utcnow
from shared.errors import Conflict, NotFound
from shared.pagination import CursorQuery, LimitQuery, Page, paginate
from shared.urls import public_url

Role = Literal["admin", "programme_manager", "case_worker", "me_officer", "cfm_officer",
               "psea_focal_point", "partner_system", "viewer"]
Governorate = Annotated[str, StringConstraints(pattern=r"^(\*|IQG\d{2})$")]

Admin = require_roles()  # admin only


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "partner-mis", "roles": ["partner_system"], "governorates": ["IQG15"]}]})

    name: str = Field(min_length=1, max_length=200, description="Who the key is for, e.g. the partner system.")
    roles: list[Role] = Field(min_length=1, default_factory=lambda: ["partner_system"])
    governorates: list[Governorate] = Field(min_length=1, description='Admin1 P-codes, or ["*"] for all.')


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    key_prefix: str = Field(description="The first characters of the secret, to recognise it.")
    roles: list[str]
    governorates: list[str]
    created_at: UtcDatetime
    rotated_at: UtcDatetime | None = None
    revoked_at: UtcDatetime | None = None


class ApiKeyWithSecret(ApiKeyPublic):
    secret: str = Field(description="Send it as `X-API-Key`. Shown once: only its hash is kept.")


def _with_secret(key: ApiKey, secret: str) -> ApiKeyWithSecret:
    return ApiKeyWithSecret(**ApiKeyPublic.model_validate(key, from_attributes=True).model_dump(), secret=secret)


# -- service functions (no commit: the session dependency owns the transaction) -----------------
def create_key(*, session: SessionDep, data: ApiKeyCreate) -> tuple[ApiKey, str]:
    """A new key and its secret."""
    secret = new_secret()
    key = ApiKey(name=data.name, key_prefix=secret[:12], key_hash=hash_secret(secret),
                 roles=sorted(set(data.roles)), governorates=sorted(set(data.governorates)))
    session.add(key)
    return key, secret


async def get_key(*, session: SessionDep, key_id: str) -> ApiKey:
    """The key, or NotFound."""
    key = await session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"No API key {key_id}")
    return key


# -- routes ---------------------------------------------------------------------------------------
router = APIRouter(prefix="/api/v1/api-keys", tags=["gateway"])


@router.post("", status_code=201, response_model=ApiKeyWithSecret, summary="Create an API key")
async def create_api_key(body: ApiKeyCreate, session: SessionDep, _: Admin, request: Request,
                         response: Response) -> ApiKeyWithSecret:
    """Create a key for a partner system, scoped to roles and governorates.

    The secret is in this response only; the gateway keeps just its hash. Partners send it as
    `X-API-Key: <secret>` and are treated as `sub = apikey:<id>` with the key's roles and governorates.
    (`Idempotency-Key` is not honoured here: replaying would mean storing the secret.)
    """
    key, secret = create_key(session=session, data=body)
    await session.flush()
    response.headers["Location"] = public_url(request, f"/api/v1/api-keys/{key.id}")
    return _with_secret(key, secret)


@router.get("", response_model=Page[ApiKeyPublic], summary="List API keys")
async def list_api_keys(session: SessionDep, _: Admin, request: Request, response: Response,
                        limit: LimitQuery = 50, cursor: CursorQuery = None) -> Page[ApiKeyPublic]:
    """Every key, newest first, revoked ones included, never with its secret."""
    rows, next_cursor = await paginate(session, select(ApiKey), ApiKey, limit=limit, cursor=cursor,
                                       request=request, response=response)
    return Page(items=[ApiKeyPublic.model_validate(r, from_attributes=True) for r in rows],
                next_cursor=next_cursor)


@router.get("/{key_id}", response_model=ApiKeyPublic, summary="Get an API key")
async def get_api_key(key_id: str, session: SessionDep, _: Admin) -> ApiKeyPublic:
    """One key, without its secret."""
    return ApiKeyPublic.model_validate(await get_key(session=session, key_id=key_id), from_attributes=True)


@router.post("/{key_id}/rotation", response_model=ApiKeyWithSecret, summary="Rotate an API key")
async def rotate_api_key(key_id: str, session: SessionDep, _: Admin, request: Request) -> ApiKeyWithSecret:
    """Replace the key's secret. The new secret is in this response only; the old one stops working
    at once on this gateway (within `CRP_API_KEY_CACHE_SECONDS` on other replicas). 409 if revoked."""
    key = await get_key(session=session, key_id=key_id)
    if key.revoked_at is not None:
        raise Conflict("A revoked API key cannot be rotated")
    secret = new_secret()
    key.key_prefix, key.key_hash, key.rotated_at = secret[:12], hash_secret(secret), utcnow()
    session.add(key)
    after_commit(session, lambda: request.app.state.api_keys.forget(key_id))
    return _with_secret(key, secret)


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_api_key(key_id: str, session: SessionDep, _: Admin, request: Request) -> Response:
    """Revoke the key: it stops working at once on this gateway (within `CRP_API_KEY_CACHE_SECONDS`
    on other replicas). It stays listed with its `revoked_at`. Revoking twice is harmless."""
    key = await get_key(session=session, key_id=key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
    after_commit(session, lambda: request.app.state.api_keys.forget(key_id))
    return Response(status_code=204)

