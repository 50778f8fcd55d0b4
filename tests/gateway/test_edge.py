"""Edge security and tracing: tokens, CORS, rate limits, security headers, request ids, traceparent."""

from __future__ import annotations

import re

import httpx

from tests.gateway.conftest import PORTAL, Process, token
from tests.gateway.test_proxy import ADMIN, assert_problem


def test_no_token_and_bad_tokens_are_401_problems(client: httpx.Client) -> None:
    r = client.get("/api/v1/beneficiaries/x")
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(client.get("/api/v1/beneficiaries/x", headers={"Authorization": "Bearer nope"}), 401)
    assert_problem(client.get("/api/v1/beneficiaries/x", headers={"Authorization": "Basic abc"}), 401)
    forged = ADMIN["Authorization"][:-4] + ("AAAA" if not ADMIN["Authorization"].endswith("AAAA") else "BBBB")
    assert_problem(client.get("/api/v1/beneficiaries/x", headers={"Authorization": forged}), 401)


def test_public_paths_and_operations_need_no_token(client: httpx.Client) -> None:
    r = client.get("/api/v1/public/indicators/summary")
    assert r.status_code == 200 and r.json()["upstream"] == "beta"
    for path in ("/healthz", "/metrics", "/openapi.json", "/docs"):
        assert client.get(path).status_code == 200, path


def test_cors_preflight_from_an_allowed_origin(client: httpx.Client) -> None:
    r = client.options("/api/v1/beneficiaries", headers={
        "Origin": PORTAL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == PORTAL
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "idempotency-key" in r.headers["access-control-allow-headers"].lower()


def test_cors_preflight_from_a_refused_origin(client: httpx.Client) -> None:
    r = client.options("/api/v1/beneficiaries", headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
    assert_problem(r, 403)
    assert "access-control-allow-origin" not in r.headers


def test_cors_headers_on_actual_requests(client: httpx.Client) -> None:
    r = client.get("/api/v1/beneficiaries/x", headers={**ADMIN, "Origin": PORTAL})
    assert r.headers["access-control-allow-origin"] == PORTAL
    assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
    r = client.get("/api/v1/beneficiaries/x", headers={**ADMIN, "Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in r.headers


def test_security_headers_on_proxied_and_own_responses(client: httpx.Client) -> None:
    for r in (client.get("/api/v1/beneficiaries/x", headers=ADMIN), client.get("/healthz"),
              client.get("/api/v1/beneficiaries/x")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "max-age" in r.headers["strict-transport-security"]
        assert "default-src 'none'" in r.headers["content-security-policy"]
    # The docs page loads Swagger UI from this origin only (no CDN): its own policy.
    assert client.get("/docs").headers["content-security-policy"].startswith("default-src 'self';")


def test_request_id_is_passed_on_and_echoed_end_to_end(client: httpx.Client) -> None:
    r = client.get("/api/v1/beneficiaries/x", headers={**ADMIN, "X-Request-ID": "req-42"})
    assert r.headers.get_list("x-request-id") == ["req-42"]
    assert r.json()["headers"]["x-request-id"] == ["req-42"]

    r = client.get("/api/v1/beneficiaries/x", headers=ADMIN)
    generated = r.headers.get_list("x-request-id")
    assert len(generated) == 1 and len(generated[0]) >= 16
    assert r.json()["headers"]["x-request-id"] == generated

    assert client.get("/api/v1/grants", headers={**ADMIN, "X-Request-ID": "req-43"}).headers["x-request-id"] == "req-43"


def test_traceparent_continues_the_callers_trace(client: httpx.Client) -> None:
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    seen = client.get("/api/v1/beneficiaries/x", headers={**ADMIN, "traceparent": incoming}).json()["headers"]
    version, trace_id, parent, flags = seen["traceparent"][0].split("-")
    assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert parent != "00f067aa0ba902b7" and re.fullmatch(r"[0-9a-f]{16}", parent)

    for bad in (None, "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01"):
        headers = {**ADMIN, "traceparent": bad} if bad else ADMIN
        value = client.get("/api/v1/beneficiaries/x", headers=headers).json()["headers"]["traceparent"][0]
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", value)
        assert value.split("-")[1] != "0" * 32


def test_rate_limit_is_per_client_with_429_and_retry_after(limited: Process) -> None:
    alice, bob = token("viewer", sub="alice"), token("viewer", sub="bob")
    with httpx.Client(base_url=limited.url) as c:
        assert [c.get("/api/v1/grants", headers=alice).status_code for _ in range(3)] == [200] * 3
        r = c.get("/api/v1/grants", headers=alice)
        body = assert_problem(r, 429)
        assert 1 <= int(r.headers["retry-after"]) <= 10
        assert body["retry_after"] == int(r.headers["retry-after"])
        assert c.get("/api/v1/grants", headers=bob).status_code == 200          # another subject
        assert c.get("/api/v1/public/indicators/x").status_code == 200          # by IP address
        assert c.get("/healthz").status_code == 200                             # operations are not limited


def test_failed_authentication_is_limited_by_address(limited: Process) -> None:
    # From its own loopback address, so that the other tests' address keeps its budget.
    with httpx.Client(base_url=limited.url, transport=httpx.HTTPTransport(local_address="127.0.0.3")) as c:
        codes = [c.get("/api/v1/grants", headers={"Authorization": "Bearer x"}).status_code for _ in range(6)]
        assert 401 in codes and codes[-1] == 429
        # Once the address is out of budget, a new credential is refused before it is even looked up.
        assert c.get("/api/v1/grants", headers=token("viewer", sub="newcomer")).status_code == 429


def test_readyz_is_ready_when_every_service_is(limited: Process) -> None:
    r = httpx.get(limited.url + "/readyz")
    assert r.status_code == 200
    assert r.json()["checks"] == {"database": "ok", "beneficiaries": "ok", "grants": "ok", "training": "ok",
                                  "infrastructure": "ok", "feedback": "ok", "indicators": "ok"}
