"""Settings refuse dev secrets outside dev; tokens are verified strictly (HS256 and JWKS)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from shared.auth import TokenVerifier, issue_token
from shared.errors import Unauthorized
from shared.pii import keyed_hash
from shared.settings import CommonSettings


def test_outside_dev_the_builtin_secrets_are_refused() -> None:
    with pytest.raises(ValidationError, match="CRP_JWT_SECRET"):
        CommonSettings(env="production")
    with pytest.raises(ValidationError, match="CRP_PII_KEY"):
        CommonSettings(env="production", jwt_secret="a-real-secret-of-enough-length-0123456789")
    ok = CommonSettings(env="production", jwt_secret="a-real-secret-of-enough-length-0123456789",
                        pii_key="another-real-key-of-enough-length-0123456")
    assert ok.env == "production"
    assert CommonSettings(env="dev").env == "dev"


def test_settings_read_the_crp_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRP_DATABASE_URL", "postgresql://u@db/crp")
    monkeypatch.setenv("CRP_NATS_URL", "nats://nats:4222")
    settings = CommonSettings(service_name="grants")
    assert settings.async_database_url == "postgresql+asyncpg://u@db/crp"
    assert settings.schema == "grants" and settings.nats_url == "nats://nats:4222"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "u1", "roles": ["case_worker"], "governorates": ["IQG15"], "iat": now, "exp": now + 60,
            "iss": "crp-dev", "aud": "crp-api"}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_hs256_tokens_are_checked_strictly() -> None:
    settings = CommonSettings()
    verifier = TokenVerifier(settings)
    principal = verifier.verify_sync(issue_token(settings, roles=["case_worker"], governorates=["IQG15"], sub="u1"))
    assert principal.sub == "u1" and principal.sees("IQG15") and not principal.sees("IQG01")
    secret = settings.jwt_secret.get_secret_value()
    bad = {
        "expired": jwt.encode(claims(exp=int(time.time()) - 60), secret, algorithm="HS256"),
        "wrong issuer": jwt.encode(claims(iss="elsewhere"), secret, algorithm="HS256"),
        "wrong audience": jwt.encode(claims(aud="other-api"), secret, algorithm="HS256"),
        "no expiry": jwt.encode(claims(exp=None), secret, algorithm="HS256"),
        "alg none": jwt.encode(claims(), key=None, algorithm="none"),
        "other secret": jwt.encode(claims(), "x" * 40, algorithm="HS256"),
        "roles not a list": jwt.encode(claims(roles="admin"), secret, algorithm="HS256"),
    }
    for name, token in bad.items():
        with pytest.raises(Unauthorized):
            verifier.verify_sync(token)
            pytest.fail(name)


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, Any, Any]]:
    """A real HTTP server publishing an RSA and an EC key, as an OIDC issuer would."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = []
    for kid, key in (("rsa-1", rsa_key), ("ec-1", ec_key)):
        jwk = json.loads(jwt.algorithms.get_default_algorithms()["RS256" if kid == "rsa-1" else "ES256"]
                         .to_jwk(key.public_key()))
        jwk["kid"] = kid
        keys.append(jwk)
    body = json.dumps({"keys": keys}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json", rsa_key, ec_key
    server.shutdown()


async def test_rs256_and_es256_from_jwks(jwks_server: tuple[str, Any, Any]) -> None:
    url, rsa_key, ec_key = jwks_server
    verifier = TokenVerifier(CommonSettings(jwt_jwks_url=url, jwt_issuer="https://idp.example"))
    for alg, kid, key in (("RS256", "rsa-1", rsa_key), ("ES256", "ec-1", ec_key)):
        token = jwt.encode(claims(iss="https://idp.example"), key, algorithm=alg, headers={"kid": kid})
        assert (await verifier.verify(token)).roles == {"case_worker"}
    forged = jwt.encode(claims(iss="https://idp.example"), rsa.generate_private_key(65537, 2048), algorithm="RS256",
                        headers={"kid": "rsa-1"})
    with pytest.raises(Unauthorized):
        await verifier.verify(forged)
    hs = jwt.encode(claims(iss="https://idp.example"), "x" * 40, algorithm="HS256", headers={"kid": "rsa-1"})
    with pytest.raises(Unauthorized):
        await verifier.verify(hs)


def test_national_ids_hash_the_same_however_typed() -> None:
    settings = CommonSettings()
    assert keyed_hash(settings, "١٢٣٤ ٥٦٧٨") == keyed_hash(settings, "1234-5678") == keyed_hash(settings, "12345678")
    assert keyed_hash(settings, "12345678") != keyed_hash(settings, "12345679")
    other = CommonSettings(pii_key="a-different-key-0123456789-0123456789")
    assert keyed_hash(settings, "12345678") != keyed_hash(other, "12345678")
