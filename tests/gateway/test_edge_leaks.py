"""The edge leaks nothing: real gateway processes in front of a real beneficiaries service.

The service verifies tokens by JWKS (the gateway's own, as an OIDC issuer's would be), so API keys
working end to end proves the gateway's minted tokens are accepted in that mode too.
"""

from __future__ import annotations

import concurrent.futures
import re
import secrets
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.observability import REQUEST_ID
from shared.server import UVICORN_ARGS
from tests.gateway.conftest import Process, free_port, start_gateway, token
from tests.gateway.test_proxy import ADMIN, assert_problem

PUBLIC = "https://crp.example.org/edge"


class Real:
    def __init__(self, gateway: Process, service: Process, admin: httpx.Client) -> None:
        self.gateway, self.service, self.admin = gateway, service, admin

    def new_key(self, roles: list[str]) -> tuple[str, str]:
        r = self.admin.post("/api/v1/api-keys", json={"name": "partner", "roles": roles, "governorates": ["*"]},
                            headers={"Host": "evil.example"})
        assert r.status_code == 201, r.text
        assert r.headers["location"] == f"{PUBLIC}/api/v1/api-keys/{r.json()['id']}"  # never the caller's Host
        return r.json()["id"], r.json()["secret"]


@pytest.fixture(scope="module")
def real(upstreams: dict[str, Process], nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    """Gateway (public base URL set, trusts no proxy) -> beneficiaries in JWKS mode; indicators -> echo."""
    tmp = tmp_path_factory.mktemp("real")
    gateway_port = free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    port = free_port()
    env = {"CRP_ENV": "dev", "CRP_DATA_DIR": str(tmp), "CRP_NATS_URL": nats_url, "CRP_LOG_LEVEL": "WARNING",
           "CRP_JWT_JWKS_URL": gateway_url + "/.well-known/jwks.json", "CRP_GATEWAY_URL": gateway_url,
           "CRP_REVOCATIONS_CACHE_SECONDS": "0.5"}
    service = Process([sys.executable, "-m", "uvicorn", "--factory", "services.beneficiaries.app:create_app",
                       "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *UVICORN_ARGS],
                      port, env, tmp / "beneficiaries.log", "/healthz")
    gateway = start_gateway(tmp, {"beneficiaries": service.url, "indicators": upstreams["alpha"].url},
                            port=gateway_port, public_base_url=PUBLIC, trusted_proxies=[],
                            rate_limit_per_second=1000, rate_limit_burst=1000)
    with httpx.Client(base_url=gateway.url, headers=ADMIN, timeout=10) as admin:
        yield Real(gateway, service, admin)
    gateway.stop()
    service.stop()


@pytest.fixture(scope="module")
def strict(upstreams: dict[str, Process], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A gateway that trusts no proxy, with a small rate limit (3 at once, then one every 10 s)."""
    proc = start_gateway(tmp_path_factory.mktemp("strict"), {"beneficiaries": upstreams["alpha"].url},
                         trusted_proxies=[], rate_limit_per_second=0.1, rate_limit_burst=3)
    yield proc
    proc.stop()


def from_address(base_url: str, address: str) -> httpx.Client:
    """A client calling from another loopback address (each has its own rate-limit budget)."""
    return httpx.Client(base_url=base_url, timeout=10, transport=httpx.HTTPTransport(local_address=address))


def test_api_keys_work_when_services_verify_tokens_by_jwks(real: Real) -> None:
    _, secret = real.new_key(["programme_manager"])
    for name in ("Al-Mosul Old City", "Al-Zuhur"):
        r = httpx.post(real.gateway.url + "/api/v1/communities", headers={"X-API-Key": secret},
                       json={"name": name, "district_pcode": "IQG15Q05"})
        assert r.status_code == 201, r.text
    assert httpx.get(real.gateway.url + "/api/v1/communities", headers={"X-API-Key": secret}).status_code == 200
    # The service really is in JWKS mode: the shared-secret tokens of the development issuer do not work there.
    assert_problem(httpx.get(real.service.url + "/api/v1/communities", headers=token("admin")), 401)


def test_link_and_location_are_built_from_the_public_base_url_only(real: Real) -> None:
    _, secret = real.new_key(["programme_manager"])
    key = {"X-API-Key": secret}
    for name in ("Hammam al-Alil", "Bartella"):
        httpx.post(real.gateway.url + "/api/v1/communities", headers=key, json={"name": name,
                                                                                "district_pcode": "IQG15Q05"})
    spoofed = {**key, "Host": "evil.example", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http",
               "X-Forwarded-Prefix": "/evil"}
    for headers in (key, spoofed):
        r = httpx.get(real.gateway.url + "/api/v1/communities?limit=1", headers=headers)
        assert r.status_code == 200, r.text
        link = re.fullmatch(r'<([^>]+)>; rel="next"', r.headers["link"])
        assert link and link.group(1).startswith(PUBLIC + "/api/v1/communities?"), r.headers["link"]
        assert "cursor=" in link.group(1) and "limit=1" in link.group(1)


def test_a_service_builds_links_from_a_trusted_proxys_well_formed_headers_only() -> None:
    from shared.settings import CommonSettings
    from shared.urls import public_base

    settings = CommonSettings()
    forwarded = {"x-forwarded-host": "crp.example.org", "x-forwarded-proto": "https", "x-forwarded-prefix": "/edge"}
    assert public_base(settings, "http", "127.0.0.1:8001", "127.0.0.1", forwarded) == PUBLIC
    assert public_base(settings, "http", "127.0.0.1:8001", "10.1.2.3", forwarded) == "http://127.0.0.1:8001"
    bad = {"x-forwarded-host": "evil.example/x?", "x-forwarded-proto": "https"}
    assert public_base(settings, "http", "127.0.0.1:8001", "127.0.0.1", bad) == "http://127.0.0.1:8001"
    configured = CommonSettings(public_base_url=PUBLIC + "/", trusted_proxies=["10.0.0.0/8"])
    assert public_base(configured, "http", "evil.example", "10.1.2.3", forwarded | {
        "x-forwarded-host": "evil.example"}) == PUBLIC


def test_no_redirects_from_services_or_the_gateway(real: Real) -> None:
    for r in (httpx.get(real.service.url + "/api/v1/communities/", headers=ADMIN),
              real.admin.get("/api/v1/communities/"),
              real.admin.get("/api/v1/api-keys/", headers={"Host": "evil.example"})):
        assert_problem(r, 404)
        assert "location" not in r.headers


def test_long_targets_are_414_long_links_pass_and_no_secret_is_logged(real: Real) -> None:
    _, secret = real.new_key(["programme_manager"])
    key = {"X-API-Key": secret}
    # "/" is sent as is and comes back as %2F in the Link: nearly three times the target's length, far over
    # the 8 KiB header limit the proxy client had (the gateway answered 502 and logged the headers).
    r = httpx.get(real.gateway.url + "/api/v1/communities?limit=1&pad=" + "/" * 8000, headers=key)
    assert r.status_code == 200, r.text
    assert len(r.headers["link"]) > 3 * 8000
    body = assert_problem(httpx.get(real.gateway.url + "/api/v1/communities?pad=" + "x" * 9000, headers=key), 414)
    assert body["max_bytes"] == 8192
    echo = httpx.get(real.gateway.url + "/api/v1/indicators/x", headers=key).json()["headers"]
    minted = echo["authorization"][0].removeprefix("Bearer ")
    text = Path(real.gateway.log).read_text()
    for needle in (secret, minted, ADMIN["Authorization"].removeprefix("Bearer ")):
        assert needle not in text


def test_an_upstream_error_is_logged_without_any_header(client: httpx.Client, gateway: Process) -> None:
    # An upstream answer no client could take (a 100 kB header line) is a 502, logged by class and upstream.
    assert_problem(client.get("/api/v1/beneficiaries/huge-header", headers=ADMIN), 502)
    text = Path(gateway.log).read_text()
    assert "upstream error" in text
    assert ADMIN["Authorization"].removeprefix("Bearer ") not in text and "Bearer" not in text


def test_revoking_a_key_revokes_the_tokens_minted_from_it(real: Real) -> None:
    key_id, secret = real.new_key(["programme_manager"])
    echo = httpx.get(real.gateway.url + "/api/v1/indicators/x", headers={"X-API-Key": secret}).json()
    minted = {"Authorization": echo["headers"]["authorization"][0]}
    assert httpx.get(real.service.url + "/api/v1/communities", headers=minted).status_code == 200

    assert real.admin.delete(f"/api/v1/api-keys/{key_id}").status_code == 204
    assert_problem(httpx.get(real.gateway.url + "/api/v1/communities", headers={"X-API-Key": secret}), 401)
    deadline = time.monotonic() + 30  # the service re-reads the list every 0.5 s here
    while (r := httpx.get(real.service.url + "/api/v1/communities", headers=minted)).status_code == 200:
        assert time.monotonic() < deadline, "the minted token still works"
        time.sleep(0.1)
    assert_problem(r, 401)
    assert "revoked" in r.json()["detail"]


def test_rotating_a_key_retires_the_tokens_minted_from_the_old_secret(real: Real) -> None:
    key_id, secret = real.new_key(["programme_manager"])
    old = httpx.get(real.gateway.url + "/api/v1/indicators/x", headers={"X-API-Key": secret}).json()
    old_token = {"Authorization": old["headers"]["authorization"][0]}
    new_secret = real.admin.post(f"/api/v1/api-keys/{key_id}/rotation").json()["secret"]
    assert httpx.get(real.gateway.url + "/api/v1/communities", headers={"X-API-Key": new_secret}).status_code == 200
    deadline = time.monotonic() + 30
    while httpx.get(real.service.url + "/api/v1/communities", headers=old_token).status_code == 200:
        assert time.monotonic() < deadline, "the old secret's token still works"
        time.sleep(0.1)
    assert httpx.get(real.gateway.url + "/api/v1/communities", headers={"X-API-Key": new_secret}).status_code == 200


def test_more_than_one_authorization_header_is_400(real: Real) -> None:
    twice = [("Authorization", ADMIN["Authorization"]), ("Authorization", "Bearer other")]
    for url in (real.gateway.url + "/api/v1/communities", real.service.url + "/api/v1/communities"):
        assert_problem(httpx.get(url, headers=twice), 400)
    assert_problem(httpx.get(real.gateway.url + "/api/v1/communities",
                             headers=[("X-API-Key", "crp_a"), ("X-API-Key", "crp_b")]), 400)


def test_a_garbage_token_is_a_malformed_token(real: Real) -> None:
    for url in (real.gateway.url + "/api/v1/communities", real.service.url + "/api/v1/communities"):
        body = assert_problem(httpx.get(url, headers={"Authorization": "Bearer not.a-jwt"}), 401)
        assert body["detail"] == "Malformed token"


def test_request_ids_are_bounded_and_safe(client: httpx.Client) -> None:
    kept = "partner-42:batch_7.x"
    assert client.get("/healthz", headers={"X-Request-ID": kept}).headers["x-request-id"] == kept
    for bad in ("x" * 129, "a b", "<script>alert(1)</script>", "id\u00e9".encode("latin-1"), "a,b"):
        echoed = client.get("/api/v1/beneficiaries/x", headers={**ADMIN, "X-Request-ID": bad}).headers.get_list(
            "x-request-id")
        assert len(echoed) == 1 and echoed[0] != bad and REQUEST_ID.fullmatch(echoed[0]), echoed


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def chunked_post(path: str, headers: str, trailers: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}"
            f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{{}}\r\n0\r\n{trailers}\r\n").encode()


def test_chunked_trailers_never_become_request_headers(gateway: Process, upstreams: dict[str, Process]) -> None:
    admin = ADMIN["Authorization"]
    answer = raw_request(gateway.port, chunked_post("/api/v1/beneficiaries/x", "",
                                                    f"Authorization: {admin}\r\nX-API-Key: crp_x\r\n"))
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
    answer = raw_request(gateway.port, chunked_post("/api/v1/beneficiaries/x", f"Authorization: {admin}\r\n",
                                                    "X-Smuggled: yes\r\n"))
    assert answer.startswith(b"HTTP/1.1 200 ") and b"x-smuggled" not in answer.lower(), answer[:300]
    # The services run the same protocol.
    answer = raw_request(upstreams["alpha"].port, chunked_post("/api/v1/x", "", "X-Smuggled: yes\r\n"))
    assert answer.startswith(b"HTTP/1.1 200 ") and b"x-smuggled" not in answer.lower(), answer[:300]


def test_a_clients_x_forwarded_for_is_not_trusted(strict: Process) -> None:
    seen = httpx.get(strict.url + "/api/v1/beneficiaries/x", headers={**ADMIN, "X-Forwarded-For": "203.0.113.9",
                                                                      "X-Forwarded-Host": "evil.example"}).json()
    assert seen["headers"]["x-forwarded-for"] == ["127.0.0.1"]
    assert seen["headers"]["x-forwarded-host"] != ["evil.example"]
    with from_address(strict.url, "127.0.0.6") as c:
        codes = [c.get("/api/v1/beneficiaries/x", headers={"Authorization": "Bearer x",
                                                            "X-Forwarded-For": f"198.51.100.{i}"}).status_code
                 for i in range(6)]
    assert codes[-1] == 429, codes  # every made-up address counted against the one real peer


def test_the_gateways_own_routes_are_rate_limited(strict: Process) -> None:
    admin = token("admin", sub="own-routes")
    with from_address(strict.url, "127.0.0.7") as c:
        codes = [c.get("/api/v1/api-keys", headers=admin).status_code for _ in range(5)]
    assert codes[:3] == [200] * 3 and codes[-1] == 429, codes


def test_readyz_stays_ready_under_a_flood_of_made_up_api_keys(strict: Process) -> None:
    def flood(n: int) -> list[int]:
        with from_address(strict.url, "127.0.0.8") as c:
            return [c.get("/api/v1/beneficiaries/x", headers={"X-API-Key": "crp_" + secrets.token_urlsafe(32)}
                          ).status_code for _ in range(n)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        floods = [pool.submit(flood, 100) for _ in range(8)]
        ready = []
        while not all(f.done() for f in floods):
            ready.append(httpx.get(strict.url + "/readyz", timeout=10).status_code)
        codes = [code for f in floods for code in f.result()]
    assert set(codes) <= {401, 429} and codes.count(429) > codes.count(401)
    assert ready and set(ready) == {200}, ready
