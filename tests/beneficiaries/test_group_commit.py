"""Group commit of registrations (services/beneficiaries/registrations.py, shared/group_commit.py), on SQLite and
PostgreSQL: concurrent POSTs written together in one transaction, each answered as it would be alone.

To make a batch form for certain, a test holds the database's write (``held_writes``: SQLite's write lock, or a
PostgreSQL lock that blocks inserts into the register) while a first registration is being written, queues the
others behind it, then lets go: the writer then takes all of them at once. ``batches()`` reads the batch sizes
from the Prometheus histogram.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.beneficiaries.app import create_app
from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.models import Beneficiary
from shared.audit import AuditEntry
from shared.db import create_sessionmaker
from shared.etag import make_etag
from shared.outbox import OutboxMessage
from tests.beneficiaries.test_api import assert_problem, community, count, person
from tests.conftest import POSTGRES_URL, Env, eventually, running

URL = "/api/v1/beneficiaries"


@pytest.fixture
async def api(env: Env) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(env.settings(BeneficiariesSettings))
    async with running(app) as client:
        yield client, app


def batches() -> tuple[float, float, float]:
    """Batches written so far, registrations in them, and batches of one (the histogram's count, sum, le=1)."""
    def value(suffix: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(f"crp_registration_batch_size{suffix}", labels) or 0.0
    return value("_count"), value("_sum"), value("_bucket", le="1.0")


def failed_batches() -> float:
    return REGISTRY.get_sample_value("crp_group_commit_failed_batches_total",
                                     {"name": "registrations-beneficiaries"}) or 0.0


@asynccontextmanager
async def held_writes(app: Any, env: Env) -> AsyncIterator[None]:
    """Hold the database's write from another connection while the block runs."""
    if env.backend == "sqlite":
        path = app.state.engine.url.database
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": app.state.settings.schema})
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("LOCK TABLE beneficiaries IN SHARE ROW EXCLUSIVE MODE")  # blocks INSERTs, not reads
        try:
            yield
        finally:
            await tx.rollback()
    finally:
        await conn.close()


def made_up_name() -> str:
    return "".join(random.choice("bdfghklmnrstz") + random.choice("aiu") for _ in range(4)).capitalize()


Requests = list[tuple[dict[str, Any], dict[str, str]]]


async def queued_behind(client: httpx.AsyncClient, app: Any, before: tuple[float, ...], first: dict[str, Any],
                        headers: dict[str, str], requests: Requests) -> tuple[Any, list[Any]]:
    """Inside ``held_writes``: send the registration ``first``, wait until its batch is being written (and held),
    then queue ``requests`` (body, headers) behind it. The first one's task and theirs."""
    first_task = asyncio.create_task(client.post(URL, json=first, headers=headers))
    await eventually(lambda: batches()[0] == before[0] + 1)  # the first one's batch is being written
    tasks = [asyncio.create_task(client.post(URL, json=body, headers=h)) for body, h in requests]
    await eventually(lambda: app.state.registrations.waiting == len(requests))
    return first_task, tasks


async def in_one_batch(client: httpx.AsyncClient, app: Any, env: Env, requests: Requests) -> list[httpx.Response]:
    """Send a first registration, hold it in the writer, queue ``requests`` (body, headers) behind it, let go:
    ``requests`` are then written in one batch. Their responses, in order."""
    first_body = person(await community(client, env), first_name=made_up_name(), father_name=made_up_name())
    before = batches()
    async with held_writes(app, env):
        first, tasks = await queued_behind(client, app, before, first_body, env.token("case_worker"), requests)
    assert (await first).status_code == 201, (await first).text
    responses = list(await asyncio.gather(*tasks))
    after = batches()
    assert after[0] - before[0] == 2 and after[1] - before[1] == 1 + len(requests), (before, after)
    return responses


async def test_the_same_person_registered_concurrently_is_registered_once(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    body = person(await community(client, env))
    before = batches()
    results = await asyncio.gather(*(client.post(URL, json=body, headers=headers) for _ in range(12)))
    assert sorted(r.status_code for r in results) == [201] + [409] * 11, [r.text for r in results]
    winner = next(r for r in results if r.status_code == 201).json()
    for loser in (r for r in results if r.status_code == 409):
        problem = assert_problem(loser, 409)
        assert problem["type"].endswith("probable-duplicate")
        assert [c["id"] for c in problem["candidates"]] == [winner["id"]]
        assert problem["candidates_outside_scope"] == 0
    assert await count(app, Beneficiary) == 1
    after = batches()
    assert after[0] - before[0] < 12, "some of them were written together"
    # the same, held so that all of them are in one batch: one 201, the others 409
    results = await in_one_batch(client, app, env, [(person(body["community_id"], first_name="Zaid"), headers)] * 6)
    assert sorted(r.status_code for r in results) == [201] + [409] * 5, [r.text for r in results]


async def test_many_people_concurrently_each_with_its_own_audit_and_event(api: Any, env: Env) -> None:
    client, app = api
    community_id = await community(client, env)
    people = [person(community_id, first_name=made_up_name(), father_name=made_up_name(),
                     date_of_birth=f"{1940 + 3 * i}-03-04", national_id=f"NID-{i:06d}") for i in range(20)]
    headers = [{**env.token("case_worker", sub=f"clerk-{i}"), "X-Request-ID": f"req-{i:04d}"} for i in range(20)]
    results = await asyncio.gather(*(client.post(URL, json=b, headers=h) for b, h in zip(people, headers, strict=True)))
    assert [r.status_code for r in results] == [201] * 20, [r.text for r in results]
    async with app.state.sessionmaker() as session:
        audits = {a.entity_id: a for a in (await session.execute(select(AuditEntry).where(
            AuditEntry.action == "registered"))).scalars()}
        events = [json.loads(m.payload) for m in (await session.execute(select(OutboxMessage))).scalars()]
    registered = [e for e in events if e["type"].endswith(".beneficiary.registered.v1")]
    for i, r in enumerate(results):
        created = r.json()
        assert created["first_name"] == people[i]["first_name"] and created["has_national_id"]
        assert created["version"] == 1
        assert r.headers["etag"] == make_etag(created["id"], 1)
        assert r.headers["location"].endswith(f"{URL}/{created['id']}")
        assert r.headers["x-request-id"] == f"req-{i:04d}"
        assert audits[created["id"]].actor == f"clerk-{i}" and audits[created["id"]].request_id == f"req-{i:04d}"
        assert [e["subject"] for e in registered].count(created["id"]) == 1
        stored = await client.get(f"{URL}/{created['id']}", headers=headers[i])
        assert stored.json() == created and stored.headers["etag"] == r.headers["etag"]
    assert len(registered) == 20
    # and in one batch for certain
    more = await in_one_batch(client, app, env, [
        (person(community_id, first_name=made_up_name(), father_name=made_up_name(),
                date_of_birth=f"{1940 + 3 * i}-05-06"),
         {**env.token("case_worker", sub=f"agent-{i}"), "X-Request-ID": f"batch-{i:04d}"}) for i in range(8)])
    assert [r.status_code for r in more] == [201] * 8
    async with app.state.sessionmaker() as session:
        for i, r in enumerate(more):
            entry = (await session.execute(select(AuditEntry).where(
                AuditEntry.entity_id == r.json()["id"]))).scalar_one()
            assert (entry.actor, entry.request_id) == (f"agent-{i}", f"batch-{i:04d}")


async def test_a_failing_item_does_not_affect_the_others_of_its_batch(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    community_id, elsewhere = await community(client, env), await community(client, env, district="IQG15Q05")
    household = await client.post("/api/v1/households", json={"community_id": elsewhere, "size": 3}, headers=headers)
    taken = await client.post(URL, json=person(community_id, first_name="Omar", national_id="A1234567"),
                              headers=headers)
    assert taken.status_code == 201
    requests = [
        (person(community_id, first_name="Ali", father_name="Hadi"), headers),
        (person("no-such-community", first_name="Hassan", father_name="Kareem"), headers),
        (person(community_id, first_name="Samir", father_name="Walid", national_id="A1234567"), headers),
        (person(community_id, first_name="Nour", father_name="Jamal", household_id=household.json()["id"]), headers),
        (person(community_id, first_name="Layla", father_name="Tariq", sex="female"), headers),
    ]
    ok, unknown, same_id, other_household, ok2 = await in_one_batch(client, app, env, requests)
    assert ok.status_code == 201 and ok2.status_code == 201
    assert assert_problem(unknown, 422)["errors"][0]["loc"][-1] == "community_id"
    assert assert_problem(same_id, 409)["type"].endswith("duplicate-national-id")
    assert assert_problem(other_household, 422)["errors"][0]["loc"][-1] == "household_id"
    assert await count(app, Beneficiary) == 4  # the first, Omar, Ali, Layla


async def test_a_batch_the_database_refuses_falls_back_to_one_by_one(api: Any, env: Env) -> None:
    """The same Idempotency-Key twice in one batch: the idempotency table's key refuses the batch; each request is
    then written alone and gets its one-by-one answer (a 201 and its replay), nothing half-written."""
    client, app = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    keyed = {**headers, "Idempotency-Key": "visit-42"}
    body = person(community_id, first_name="Mariam", father_name="Saleh", sex="female")
    failed = failed_batches()
    results = await in_one_batch(client, app, env, [
        (person(community_id, first_name="Khalid", father_name="Adel"), headers), (body, keyed), (body, keyed),
        (person(community_id, first_name="Huda", father_name="Faris", sex="female"), headers)])
    assert failed_batches() == failed + 1
    assert [r.status_code for r in results] == [201] * 4, [r.text for r in results]
    first, again = results[1], results[2]
    assert {first.headers.get("idempotency-replayed"), again.headers.get("idempotency-replayed")} == {"true", None}
    assert first.json() == again.json() and first.headers["etag"] == again.headers["etag"]
    assert await count(app, Beneficiary) == 4  # the first, Khalid, Mariam once, Huda
    async with app.state.sessionmaker() as session:
        assert len((await session.execute(select(AuditEntry).where(
            AuditEntry.entity_id == first.json()["id"]))).scalars().all()) == 1


async def test_a_national_id_registered_meanwhile_elsewhere_refuses_the_batch(env: Env) -> None:
    """Two processes (two apps on one database) register the same new national ID under different names at once:
    one 201, one 409, and the other registrations of the refused batch are written one by one."""
    settings = env.settings(BeneficiariesSettings)
    async with running(create_app(settings)) as a, running(create_app(settings)) as b:
        headers = env.token("case_worker")
        community_id = await community(a, env)
        for round_ in range(3):
            nid = f"B{round_:07d}"
            results = await asyncio.gather(*(
                client.post(URL, json=person(community_id, first_name=f"{who}{round_}q", father_name=f"F{i}{round_}z",
                                             national_id=nid if i == 0 else None), headers=headers)
                for who, client in (("Ahmad", a), ("Basim", b)) for i in range(4)))
            statuses = [r.status_code for r in results]
            assert sorted(statuses) == [201] * 7 + [409], [r.text for r in results]
            loser = next(r for r in results if r.status_code == 409)
            assert assert_problem(loser, 409)["type"].endswith("duplicate-national-id")


async def test_an_idempotent_replay_of_a_batched_registration(api: Any, env: Env) -> None:
    client, app = api
    headers = {**env.token("case_worker"), "Idempotency-Key": "form-7"}
    body = person(await community(client, env), first_name="Rana", father_name="Munir", sex="female")
    (created,) = await in_one_batch(client, app, env, [(body, headers)])
    assert created.status_code == 201
    replay = await client.post(URL, json=body, headers=headers)
    assert replay.status_code == 201 and replay.headers["idempotency-replayed"] == "true"
    assert replay.json() == created.json()
    assert (replay.headers["etag"], replay.headers["location"]) == (created.headers["etag"],
                                                                    created.headers["location"])
    assert await count(app, Beneficiary) == 2  # the first and Rana, once
    # replayed inside a batch too; the same key with another body is refused
    replayed, reused = await in_one_batch(client, app, env, [
        (body, headers), ({**body, "first_name": "Randa"}, headers)])
    assert replayed.status_code == 201 and replayed.json() == created.json()
    assert replayed.headers["idempotency-replayed"] == "true"
    assert assert_problem(reused, 422)["type"].endswith("idempotency-key-reused")
    assert await count(app, Beneficiary) == 3  # and the second batch's first


async def test_a_scoped_caller_batched_with_an_admin_sees_only_their_governorates(api: Any, env: Env) -> None:
    client, app = api
    admin = env.token("admin")
    ninewa, anbar = await community(client, env, "IQG15Q05"), await community(client, env, "IQG01Q01")
    body = person(ninewa, first_name="Sami", father_name="Nabil")
    first = await client.post(URL, json=body, headers=admin)
    assert first.status_code == 201
    scoped = env.token("case_worker", governorates=("IQG01",), sub="anbar-clerk")
    requests = [({**body, "community_id": anbar}, scoped), ({**body, "community_id": anbar}, admin),
                ({**body, "first_name": "Tamer"}, scoped)]  # a community outside the clerk's scope
    hidden, shown, outside = await in_one_batch(client, app, env, requests)
    problem = assert_problem(hidden, 409)
    assert problem["candidates"] == [] and problem["candidates_outside_scope"] == 1
    assert first.json()["id"] not in hidden.text
    problem = assert_problem(shown, 409)
    assert [c["id"] for c in problem["candidates"]] == [first.json()["id"]]
    assert problem["candidates_outside_scope"] == 0
    assert assert_problem(outside, 422)["errors"][0]["loc"][-1] == "community_id"


async def test_a_client_that_gives_up_does_not_break_the_batch(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    before = batches()
    async with held_writes(app, env):
        first, tasks = await queued_behind(client, app, before, person(community_id), headers, [
            (person(community_id, first_name=f"N{i}q", father_name="Z"), headers) for i in range(3)])
        tasks[1].cancel()  # the client disconnects while its registration waits for the batch
        await asyncio.gather(tasks[1], return_exceptions=True)
    assert (await first).status_code == 201
    assert [(await t).status_code for t in (tasks[0], tasks[2])] == [201, 201]
    assert await count(app, Beneficiary) == 3  # the cancelled one was not written


async def test_the_database_unavailable_is_503_for_every_request_of_the_batch(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    registrations = app.state.registrations
    from sqlalchemy.ext.asyncio import create_async_engine

    gone = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1
    registrations.sessionmaker, kept = create_sessionmaker(gone), registrations.sessionmaker
    try:
        results = await asyncio.gather(*(client.post(URL, json=person(community_id, first_name=f"P{i}x"),
                                                     headers=headers) for i in range(6)))
    finally:
        registrations.sessionmaker = kept
        await gone.dispose()
    for r in results:
        problem = assert_problem(r, 503)
        assert problem["type"].endswith("service-unavailable") and r.headers["retry-after"] == "1"
    assert await count(app, Beneficiary) == 0


async def test_batch_max_1_writes_each_alone(env: Env) -> None:
    app = create_app(env.settings(BeneficiariesSettings, registration_batch_max=1))
    async with running(app) as client:
        headers = env.token("case_worker")
        community_id = await community(client, env)
        before = batches()
        results = await asyncio.gather(*(client.post(URL, json=person(community_id, first_name=f"Q{i}x"),
                                                     headers=headers) for i in range(5)))
        assert [r.status_code for r in results] == [201] * 5
        assert batches() == before


async def test_a_confirmed_duplicate_in_a_batch_waits_in_the_review_queue(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    body = person(await community(client, env), first_name="Fadi", father_name="Rami")
    first = await client.post(URL, json=body, headers=headers)
    confirmed, refused = await in_one_batch(client, app, env, [
        ({**body, "confirm_not_duplicate": True}, headers), (body, headers)])
    assert confirmed.status_code == 201
    # the third is matched against both records, the second one written in the same batch
    assert {c["id"] for c in assert_problem(refused, 409)["candidates"]} == {first.json()["id"], confirmed.json()["id"]}
    reviews = (await client.get("/api/v1/duplicate-reviews", headers=env.token("programme_manager"))).json()["items"]
    assert [(r["beneficiary"]["id"], r["candidate"]["id"], r["source"], r["status"]) for r in reviews] == [
        (confirmed.json()["id"], first.json()["id"], "registration", "open")]


async def test_each_registration_of_a_batch_carries_its_own_trace(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    parents = [f"00-{i:032x}-{i:016x}-01" for i in range(1, 5)]
    results = await in_one_batch(client, app, env, [
        (person(community_id, first_name=made_up_name(), father_name=made_up_name(),
                date_of_birth=f"{1950 + 3 * i}-01-02"), {**headers, "traceparent": parent})
        for i, parent in enumerate(parents)])
    async with app.state.sessionmaker() as session:
        events = {e["subject"]: e for e in (json.loads(m.payload) for m in (await session.execute(
            select(OutboxMessage))).scalars())}
    for r, parent in zip(results, parents, strict=True):
        assert r.status_code == 201
        assert events[r.json()["id"]]["traceparent"].split("-")[1] == parent.split("-")[1]


async def test_stopping_finishes_the_batch_and_leaves_no_request_unanswered(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    registrations = app.state.registrations
    before = batches()
    async with held_writes(app, env):
        first, queued = await queued_behind(client, app, before, person(community_id), headers, [
            (person(community_id, first_name=made_up_name(), father_name=made_up_name()), headers) for _ in range(3)])
        stopping = asyncio.create_task(registrations.stop(timeout=30))
        await asyncio.sleep(0.2)
        assert not stopping.done(), "it waits for the batch being written"
    await stopping
    assert registrations._task.done()
    assert [(await t).status_code for t in (first, *queued)] == [201] * 4  # the queued ones were written alone
    assert batches()[0] == before[0] + 1 and await count(app, Beneficiary) == 4
    late = await client.post(URL, json=person(community_id, first_name=made_up_name(), father_name=made_up_name()),
                             headers=headers)
    assert late.status_code == 201  # written alone once the writer has stopped
