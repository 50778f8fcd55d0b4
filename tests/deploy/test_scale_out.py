"""Scale-out on this machine, with real processes on PostgreSQL and NATS JetStream:

- two replicas of a producing service (beneficiaries) on one database, each with its own outbox relay, and
  two indicators replicas on one database sharing the durable consumer: under a burst of concurrent writes
  every event is on the stream once and counted once;
- two gateway replicas on one database: a rate limit spent half through each is spent, and an API key
  revoked through one is refused by the other.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.cli import free_port
from shared.auth import issue_token
from shared.settings import CommonSettings
from tests.conftest import POSTGRES_URL

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not POSTGRES_URL, reason="CRP_TEST_POSTGRES_URL not set")]
ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 120          # the burst: concurrent registrations, half through each replica
CONCURRENCY = 16
BURST = 20            # the gateways' rate limit: 20 at once, then one every 100 s (nothing refills meanwhile)


def headers(*roles: str, sub: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(CommonSettings(), roles=roles, sub=sub)}


class Replica:
    """``crp serve NAME`` as a container runs it, on its own port."""

    def __init__(self, name: str, env: dict[str, str], log: Path, port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        full = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")} | env
        with log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", name, "--port",
                                          str(self.port)], cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} not ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Cluster:
    def __init__(self, tmp: Path, nats_url: str) -> None:
        tag = uuid.uuid4().hex[:10]
        self.stream = f"SCALE{tag}"
        self.schemas = {name: f"scale_{tag}_{name}" for name in ("beneficiaries", "indicators", "gateway")}
        self.nats_url = nats_url
        self.replicas: list[Replica] = []
        key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        assert POSTGRES_URL
        self.common = {"CRP_ENV": "dev", "CRP_DATABASE_URL": POSTGRES_URL, "CRP_NATS_URL": nats_url,
                       "CRP_NATS_STREAM": self.stream, "CRP_SUBJECT_PREFIX": f"scale{tag}",
                       "CRP_LOG_LEVEL": "WARNING", "CRP_GATEWAY_SIGNING_KEY": key}
        self.tmp = tmp

    def start(self, name: str, n: int, port: int | None = None, **env: str) -> Replica:
        schema = self.schemas["gateway" if name == "gateway" else name]
        replica = Replica(name, {**self.common, "CRP_DATABASE_SCHEMA": schema, **env},
                          self.tmp / f"{name}-{n}.log", port)
        self.replicas.append(replica)
        return replica

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()

    async def drop(self) -> None:
        try:
            nc = await nats.connect(self.nats_url)
            try:
                await nc.jetstream().delete_stream(self.stream)
            finally:
                await nc.close()
        except Exception:
            pass
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            for schema in self.schemas.values():
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, nats_url: str) -> Iterator[dict[str, Any]]:
    c = Cluster(tmp_path_factory.mktemp("scale-out"), nats_url)
    gateway_ports = [free_port(), free_port()]
    # The services accept the tokens a gateway mints for API keys (either gateway: they share the signing key).
    c.common["CRP_GATEWAY_URL"] = f"http://127.0.0.1:{gateway_ports[0]}"
    try:
        producers = [c.start("beneficiaries", n) for n in (1, 2)]  # started together: migrations under a lock
        consumers = [c.start("indicators", n) for n in (1, 2)]
        for replica in [*producers, *consumers]:
            replica.wait_ready("/readyz")
        gateways = []
        for n, (producer, consumer) in enumerate(zip(producers, consumers, strict=True), start=1):
            upstreams = {"beneficiaries": producer.url, "indicators": consumer.url}
            gateways.append(c.start("gateway", n, gateway_ports[n - 1], CRP_UPSTREAMS=json.dumps(upstreams),
                                    CRP_RATE_LIMIT_PER_SECOND="0.01", CRP_RATE_LIMIT_BURST=str(BURST)))
        for gateway in gateways:
            gateway.wait_ready("/healthz")
        yield {"cluster": c, "producers": producers, "consumers": consumers, "gateways": gateways}
    finally:
        c.stop()
        asyncio.run(c.drop())


async def register_burst(producers: list[Any]) -> list[str]:
    """PEOPLE registrations at once, alternating between the replicas; every one is 201."""
    auth = headers("programme_manager", sub="burst")
    async with httpx.AsyncClient(timeout=60) as client:
        community = await client.post(f"{producers[0].url}/api/v1/communities", headers=auth,
                                      json={"name": "Scale-out", "district_pcode": "IQG15Q05"})
        assert community.status_code == 201, community.text
        community_id = community.json()["id"]
        gate = asyncio.Semaphore(CONCURRENCY)
        rng = random.Random(7)

        async def register(i: int) -> str:
            born = f"{rng.randint(1950, 2005)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
            body = {"first_name": f"P{uuid.uuid4().hex[:8]}", "father_name": f"F{uuid.uuid4().hex[:8]}",
                    "sex": rng.choice(["female", "male"]), "date_of_birth": born,
                    "displacement_status": rng.choice(["idp", "returnee", "host_community"]),
                    "community_id": community_id, "confirm_not_duplicate": True,
                    "consent": {"given": True, "obtained_on": "2026-11-20"}}
            async with gate:
                response = await client.post(f"{producers[i % 2].url}/api/v1/beneficiaries", json=body, headers=auth)
            assert response.status_code == 201, response.text
            return str(response.json()["id"])

        return await asyncio.gather(*(register(i) for i in range(PEOPLE)))


async def settled(c: Cluster, expected_registered: int, indicators: Any) -> dict[str, Any]:
    """Wait (bounded) until every outbox row is published and the durable consumer has nothing left, then
    read the stream, the outbox and the indicators' record of applied events."""
    nc = await nats.connect(c.nats_url)
    js = nc.jetstream()
    conn = await asyncpg.connect(POSTGRES_URL)
    outbox = f'"{c.schemas["beneficiaries"]}".outbox'
    processed = f'"{c.schemas["indicators"]}".processed_events'
    auth = headers("me_officer", sub="reader")
    client = httpx.AsyncClient(base_url=indicators.url, headers=auth, timeout=10)  # not through a gateway's limit
    try:
        deadline = time.monotonic() + 120
        while True:
            unsent = await conn.fetchval(f"SELECT count(*) FROM {outbox} WHERE published_at IS NULL")
            info = await js.consumer_info(c.stream, "indicators")
            summary = (await client.get("/api/v1/indicators/summary")).json()
            if (unsent == 0 and info.num_pending == 0 and info.num_ack_pending == 0
                    and summary["beneficiaries_registered"] >= expected_registered):
                break
            assert time.monotonic() < deadline, (unsent, info, summary)
            await asyncio.sleep(0.3)
        last = (await js.stream_info(c.stream)).state.last_seq
        ids = [(await js.get_msg(c.stream, seq)).headers["Nats-Msg-Id"] for seq in range(1, last + 1)]
        return {"stream_ids": ids,
                "outbox_ids": [r["event_id"] for r in await conn.fetch(f"SELECT event_id FROM {outbox}")],
                "processed_ids": [r["event_id"] for r in await conn.fetch(f"SELECT event_id FROM {processed}")],
                "summary": summary}
    finally:
        await client.aclose()
        await conn.close()
        await nc.close()


def test_a_burst_through_two_relays_is_published_once_and_counted_once(cluster: dict[str, Any]) -> None:
    c: Cluster = cluster["cluster"]
    people = asyncio.run(register_burst(cluster["producers"]))
    assert len(set(people)) == PEOPLE
    state = asyncio.run(settled(c, PEOPLE, cluster["consumers"][1]))
    stream_ids, outbox_ids = state["stream_ids"], state["outbox_ids"]
    # Every event written (one community, PEOPLE registrations) is on the stream exactly once...
    assert len(outbox_ids) == PEOPLE + 1
    assert len(stream_ids) == len(set(stream_ids)) == len(outbox_ids)
    assert set(stream_ids) == set(outbox_ids)
    # ...and applied exactly once by the two consumers together.
    assert sorted(state["processed_ids"]) == sorted(stream_ids)
    assert state["summary"]["beneficiaries_registered"] == PEOPLE
    for replica in [*cluster["producers"], *cluster["consumers"]]:
        assert replica.proc.poll() is None, f"{replica.name} died"


def test_a_rate_limit_split_across_two_gateways_is_one_limit(cluster: dict[str, Any]) -> None:
    a, b = cluster["gateways"]
    auth = headers("viewer", sub="one-client")
    codes = [httpx.get(f"{(a, b)[i % 2].url}/api/v1/indicators/summary", headers=auth, timeout=10).status_code
             for i in range(BURST)]
    assert codes == [200] * BURST  # half through each: per process, each would still have half its bucket
    refused = [httpx.get(f"{g.url}/api/v1/indicators/summary", headers=auth, timeout=10) for g in (a, b)]
    assert [r.status_code for r in refused] == [429, 429]
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    other = headers("viewer", sub="another-client")  # the limit is per client
    assert httpx.get(f"{b.url}/api/v1/indicators/summary", headers=other, timeout=10).status_code == 200


def test_an_api_key_revoked_through_one_gateway_is_refused_by_the_other(cluster: dict[str, Any]) -> None:
    a, b = cluster["gateways"]
    admin = headers("admin", sub="key-admin")
    created = httpx.post(f"{a.url}/api/v1/api-keys", headers=admin, timeout=10,
                         json={"name": "partner", "roles": ["me_officer"], "governorates": ["*"]})
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["secret"]}
    summary = f"{b.url}/api/v1/indicators/summary"
    assert httpx.get(summary, headers=key, timeout=10).status_code == 200  # b knows the key now
    revoked = httpx.delete(f"{a.url}/api/v1/api-keys/{created.json()['id']}", headers=admin, timeout=10)
    assert revoked.status_code == 204
    deadline = time.monotonic() + 10  # b reads the revocations at most once a second
    while (status := httpx.get(summary, headers=key, timeout=10).status_code) == 200:
        assert time.monotonic() < deadline, "the other gateway still accepts the revoked key"
        time.sleep(0.5)
    assert status == 401
    assert httpx.get(f"{a.url}/api/v1/indicators/summary", headers=key, timeout=10).status_code == 401
