"""What the request path remembers or skips for speed never serves a stale answer: a remembered token is refused
once it expires, is trusted only by the verifier that checked it, and a gateway token is refused as soon as its
API key is revoked; a response rendered straight from values carries the route's headers and RFC 3339 UTC."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.responses import Response

import shared.auth
from shared.auth import TokenVerifier, issue_token
from shared.errors import Unauthorized
from shared.responses import json_response
from shared.settings import CommonSettings


def clock_at(monkeypatch: pytest.MonkeyPatch, moment: float) -> None:
    """The verifier's clock and PyJWT's both read ``moment``."""

    class At(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.fromtimestamp(moment, tz)

    monkeypatch.setattr(shared.auth.time, "time", lambda: moment)
    monkeypatch.setattr(jwt.api_jwt, "datetime", At)


def test_a_remembered_token_is_refused_once_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CommonSettings()
    verifier = TokenVerifier(settings)
    token = issue_token(settings, roles=["viewer"], sub="u1", ttl_seconds=60)
    assert verifier.verify_sync(token).sub == "u1"
    assert verifier.verify_sync(token).sub == "u1"  # now from the verifier's memory
    clock_at(monkeypatch, time.time() + 60 + 10)  # past exp and the 5 s leeway
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify_sync(token)


async def test_a_remembered_token_is_refused_once_expired_async(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = CommonSettings()
    verifier = TokenVerifier(settings)
    token = issue_token(settings, roles=["viewer"], sub="u1", ttl_seconds=60)
    assert (await verifier.verify(token)).sub == "u1"
    clock_at(monkeypatch, time.time() + 60 + 10)
    with pytest.raises(Unauthorized):
        await verifier.verify(token)


def test_a_remembered_token_is_not_trusted_under_another_secret() -> None:
    """A verifier remembers what it checked itself: after the secret changes (a restart with a new
    CRP_JWT_SECRET), a token signed with the old one is refused even though it was verified before."""
    old = CommonSettings()
    token = issue_token(old, roles=["viewer"], sub="u1")
    assert TokenVerifier(old).verify_sync(token).sub == "u1"
    new = CommonSettings(jwt_secret="another-secret-" + "x" * 40)
    with pytest.raises(Unauthorized):
        TokenVerifier(new).verify_sync(token)


@pytest.fixture
def gateway() -> Iterator[tuple[str, Any, dict[str, float]]]:
    """A stand-in for the gateway's /.well-known endpoints: its ES256 key and a list of revoked API keys that
    the test changes."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.get_default_algorithms()["ES256"].to_jwk(key.public_key()))
    jwk["kid"] = "gw-1"
    revoked: dict[str, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = (json.dumps({"keys": [jwk]}) if self.path.endswith("jwks.json")
                    else json.dumps({"api_keys": revoked})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", key, revoked
    server.shutdown()


async def test_a_remembered_gateway_token_is_refused_once_its_key_is_revoked(
        gateway: tuple[str, Any, dict[str, float]]) -> None:
    url, key, revoked = gateway
    settings = CommonSettings(gateway_url=url, revocations_cache_seconds=0)
    verifier = TokenVerifier(settings)
    now = int(time.time())
    token = jwt.encode({"sub": "partner", "roles": ["partner_system"], "governorates": ["*"], "api_key": "k1",
                        "iat": now, "exp": now + 600, "iss": settings.gateway_issuer, "aud": settings.jwt_audience},
                       key, algorithm="ES256", headers={"kid": "gw-1"})
    assert (await verifier.verify(token)).sub == "partner"
    assert (await verifier.verify(token)).sub == "partner"  # remembered
    revoked["k1"] = float(now)
    with pytest.raises(Unauthorized, match="revoked"):
        await verifier.verify(token)


def test_json_response_keeps_the_route_headers_and_renders_utc() -> None:
    injected = Response()
    injected.headers["ETag"] = '"abc"'
    injected.headers["Link"] = '<http://x/next>; rel="next"'
    rendered = json_response({"at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "on": date(2026, 1, 2),
                              "name": "أحمد"}, response=injected)
    assert json.loads(rendered.body) == {"at": "2026-01-02T03:04:05.000006Z", "on": "2026-01-02", "name": "أحمد"}
    headers = rendered.headers
    assert headers["etag"] == '"abc"' and headers["link"] == '<http://x/next>; rel="next"'
    assert headers.getlist("content-length") == [str(len(rendered.body))]
    assert headers["content-type"] == "application/json"
