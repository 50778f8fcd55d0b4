"""Routing, streaming pass-through and upstream failures, through a real gateway process."""

from __future__ import annotations

import gzip
import hashlib

import httpx

from tests.gateway.conftest import Process, token

PROBLEM = "application/problem+json"
ADMIN = token("admin")


def assert_problem(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["type"] and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body


def test_prefixes_route_to_their_service_with_path_and_query_intact(client: httpx.Client) -> None:
    r = client.get("/api/v1/beneficiaries/a%2Fb/c?x=1&y=%20z&x=2", headers=ADMIN)
    assert r.status_code == 200
    echo = r.json()
    assert echo["upstream"] == "alpha" and echo["method"] == "GET"
    assert echo["raw_path"] == "/api/v1/beneficiaries/a%2Fb/c"
    assert echo["query"] == "x=1&y=%20z&x=2"
    assert client.get("/api/v1/indicators/summary", headers=ADMIN).json()["upstream"] == "beta"
    assert client.get("/api/v1/beneficiaries", headers=ADMIN).json()["path"] == "/api/v1/beneficiaries"


def test_a_path_outside_the_table_is_a_404_problem(client: httpx.Client) -> None:
    assert_problem(client.get("/api/v1/nowhere", headers=ADMIN), 404)
    assert_problem(client.get("/api/v1/beneficiariesX", headers=ADMIN), 404)


def test_upstream_down_is_a_503_problem_then_fails_fast(client: httpx.Client) -> None:
    body = assert_problem(client.get("/api/v1/grants", headers=ADMIN), 503)
    assert body["service"] == "grants"
    for _ in range(3):
        r = client.get("/api/v1/grants/x", headers=ADMIN)
    body = assert_problem(r, 503)
    assert "down" in body["detail"]           # marked down: answered without trying to connect
    assert int(r.headers["retry-after"]) >= 1


def test_a_service_that_is_not_configured_is_a_503_problem(client: httpx.Client) -> None:
    body = assert_problem(client.get("/api/v1/courses", headers=ADMIN), 503)
    assert body["service"] == "training"


def test_slow_upstream_is_a_504_problem(client: httpx.Client) -> None:
    body = assert_problem(client.get("/api/v1/beneficiaries/slow?seconds=3", headers=ADMIN), 504)
    assert body["service"] == "beneficiaries"


def test_body_too_large_is_a_413_problem(client: httpx.Client) -> None:
    assert_problem(client.post("/api/v1/beneficiaries", content=b"x" * 100_001, headers=ADMIN), 413)

    def chunks():
        for _ in range(30):
            yield b"y" * 10_000

    assert_problem(client.post("/api/v1/beneficiaries", content=chunks(), headers=ADMIN), 413)


def test_request_bodies_reach_the_upstream_intact(client: httpx.Client) -> None:
    payload = bytes(range(256)) * 300
    r = client.put("/api/v1/beneficiaries/x", content=payload, headers=ADMIN)
    assert r.json()["body_size"] == len(payload)
    assert r.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()

    def chunks():
        for i in range(9):
            yield bytes([i]) * 10_000

    r = client.post("/api/v1/beneficiaries", content=chunks(), headers=ADMIN)
    assert r.json()["body_sha256"] == hashlib.sha256(b"".join(bytes([i]) * 10_000 for i in range(9))).hexdigest()


def test_gzip_upstream_response_reaches_the_client_intact(client: httpx.Client) -> None:
    with client.stream("GET", "/api/v1/beneficiaries/gzip", headers={**ADMIN, "Accept-Encoding": "gzip"}) as r:
        raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
        assert int(r.headers["content-length"]) == len(raw)
        plain = gzip.decompress(raw)
        assert hashlib.sha256(plain).hexdigest() == r.headers["x-plain-sha256"]
    decoded = client.get("/api/v1/beneficiaries/gzip", headers=ADMIN)  # httpx decompresses
    assert len(decoded.json()["items"]) == 200


def test_the_callers_accept_encoding_is_passed_as_is(client: httpx.Client) -> None:
    r = client.get("/api/v1/beneficiaries/echo", headers={**ADMIN, "Accept-Encoding": "identity"})
    assert r.json()["headers"]["accept-encoding"] == ["identity"]


def test_streamed_upstream_response_arrives_whole(client: httpx.Client) -> None:
    r = client.get("/api/v1/beneficiaries/stream?chunks=60&size=5000", headers=ADMIN)
    assert r.status_code == 200
    assert r.content == b"".join(bytes([65 + i % 26]) * 5000 for i in range(60))


def test_hop_by_hop_headers_are_stripped_both_ways(client: httpx.Client) -> None:
    r = client.get("/api/v1/beneficiaries/x", headers={**ADMIN, "Connection": "keep-alive, X-Hop", "X-Hop": "1",
                                                       "Keep-Alive": "timeout=5", "X-Kept": "yes"})
    seen = r.json()["headers"]
    assert "x-hop" not in seen and "keep-alive" not in seen
    assert seen["x-kept"] == ["yes"]
    assert seen["x-forwarded-for"] == ["127.0.0.1"]

    r = client.get("/api/v1/beneficiaries/status/418", headers=ADMIN)
    assert r.status_code == 418 and r.json() == {"status": 418}
    assert "x-secret" not in r.headers                    # named in the upstream's Connection header
    assert "access-control-allow-origin" not in r.headers  # CORS belongs to the gateway
    assert r.headers.get("connection") != "close"


def test_the_bearer_token_is_forwarded_for_the_service_to_verify(client: httpx.Client) -> None:
    seen = client.get("/api/v1/beneficiaries/x", headers=ADMIN).json()["headers"]
    assert seen["authorization"] == [ADMIN["Authorization"]]


def test_large_bodies_stream_through_with_their_length(limited: Process) -> None:
    payload = bytes(range(256)) * (3 * 4096)  # 3 MiB: over the read-first size, under the limit
    r = httpx.put(limited.url + "/api/v1/beneficiaries/big", content=payload, headers=token("admin", sub="big"))
    assert r.json()["body_size"] == len(payload)
    assert r.json()["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert r.json()["headers"]["content-length"] == [str(len(payload))]
