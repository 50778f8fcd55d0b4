"""API keys for partner systems: created by an admin, hashed at rest, accepted, rotated and revoked."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.conftest import POSTGRES_URL
from tests.gateway.conftest import Process, start_gateway, token
from tests.gateway.test_proxy import ADMIN, assert_problem


@pytest.fixture
def keys_gateway(backend: str, gateway: Process, upstreams: dict[str, Process],
                 tmp_path: Path) -> Iterator[Process]:
    """The shared gateway on SQLite; on PostgreSQL, one of its own in a fresh schema."""
    if backend == "sqlite":
        yield gateway
        return
    import asyncpg

    schema = f"t_gw_{uuid.uuid4().hex[:10]}"
    proc = start_gateway(tmp_path, {"beneficiaries": upstreams["alpha"].url},
                         database_url=POSTGRES_URL, database_schema=schema)
    yield proc
    proc.stop()

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

    asyncio.run(drop())


def test_api_key_lifecycle(keys_gateway: Process) -> None:
    with httpx.Client(base_url=keys_gateway.url) as c:
        r = c.post("/api/v1/api-keys", headers=ADMIN, json={
            "name": "UNHCR ProGres", "roles": ["partner_system"], "governorates": ["IQG15", "IQG01"]})
        assert r.status_code == 201, r.text
        created = r.json()
        key_id, secret = created["id"], created["secret"]
        assert r.headers["location"] == f"{keys_gateway.url}/api/v1/api-keys/{key_id}"
        assert secret.startswith(created["key_prefix"]) and len(secret) > 40

        # Accepted: the service gets a short-lived token of the gateway's making, not the key.
        seen = c.get("/api/v1/beneficiaries/x", headers={"X-API-Key": secret}).json()["headers"]
        assert "x-api-key" not in seen
        minted = seen["authorization"][0].removeprefix("Bearer ")
        signing_key = jwt.PyJWKClient(keys_gateway.url + "/.well-known/jwks.json").get_signing_key_from_jwt(minted)
        claims = jwt.decode(minted, signing_key.key, algorithms=["ES256"], audience="crp-api", issuer="crp-gateway")
        assert claims["sub"] == f"apikey:{key_id}" and claims["api_key"] == key_id
        assert claims["roles"] == ["partner_system"] and claims["governorates"] == ["IQG01", "IQG15"]
        assert claims["exp"] - claims["iat"] <= 30  # CRP_API_KEY_CACHE_SECONDS
        assert key_id not in c.get("/.well-known/crp-revocations.json").json()["api_keys"]

        # Listed without the secret.
        listed = c.get("/api/v1/api-keys", headers=ADMIN).json()
        mine = [k for k in listed["items"] if k["id"] == key_id]
        assert len(mine) == 1 and "secret" not in mine[0] and secret not in str(listed)
        assert "secret" not in c.get(f"/api/v1/api-keys/{key_id}", headers=ADMIN).json()

        # Rotation: the new secret works, the old one no longer does.
        r = c.post(f"/api/v1/api-keys/{key_id}/rotation", headers=ADMIN)
        assert r.status_code == 200
        new_secret = r.json()["secret"]
        assert new_secret != secret and r.json()["rotated_at"]
        assert_problem(c.get("/api/v1/beneficiaries/x", headers={"X-API-Key": secret}), 401)
        assert c.get("/api/v1/beneficiaries/x", headers={"X-API-Key": new_secret}).status_code == 200
        rotated = c.get("/.well-known/crp-revocations.json").json()["api_keys"][key_id]
        assert rotated >= claims["iat"]  # what was minted from the old secret no longer holds

        # Revoked: refused at once, still listed with revoked_at; revoking again is harmless.
        assert c.delete(f"/api/v1/api-keys/{key_id}", headers=ADMIN).status_code == 204
        assert_problem(c.get("/api/v1/beneficiaries/x", headers={"X-API-Key": new_secret}), 401)
        assert c.get(f"/api/v1/api-keys/{key_id}", headers=ADMIN).json()["revoked_at"]
        assert c.get("/.well-known/crp-revocations.json").json()["api_keys"][key_id] >= rotated
        assert c.delete(f"/api/v1/api-keys/{key_id}", headers=ADMIN).status_code == 204
        assert_problem(c.post(f"/api/v1/api-keys/{key_id}/rotation", headers=ADMIN), 409)


def test_an_unknown_api_key_is_refused(client: httpx.Client) -> None:
    r = client.get("/api/v1/beneficiaries/x", headers={"X-API-Key": "crp_not-a-key"})
    assert_problem(r, 401)


def test_api_key_management_is_for_admins_only(client: httpx.Client) -> None:
    body = {"name": "x", "roles": ["viewer"], "governorates": ["*"]}
    assert_problem(client.post("/api/v1/api-keys", json=body), 401)
    assert_problem(client.post("/api/v1/api-keys", json=body, headers=token("programme_manager")), 403)
    assert_problem(client.get("/api/v1/api-keys", headers=token("viewer")), 403)
    assert_problem(client.delete(f"/api/v1/api-keys/{uuid.uuid4()}", headers=token("viewer")), 403)


def test_api_key_requests_are_validated(client: httpx.Client) -> None:
    for bad in ({"name": "x", "roles": ["emperor"], "governorates": ["*"]},
                {"name": "x", "roles": ["viewer"], "governorates": ["Mosul"]},
                {"name": "", "roles": ["viewer"], "governorates": ["*"]},
                {"name": "x", "roles": ["viewer"], "governorates": []}):
        body = assert_problem(client.post("/api/v1/api-keys", json=bad, headers=ADMIN), 422)
        assert body["errors"]
    assert_problem(client.get(f"/api/v1/api-keys/{uuid.uuid4()}", headers=ADMIN), 404)
    assert_problem(client.post(f"/api/v1/api-keys/{uuid.uuid4()}/rotation", headers=ADMIN), 404)
