"""Races: concurrent PATCHes with one If-Match, crossed merges, transitions raced twice (SQLite and PostgreSQL).

The requests really run at the same time: one event loop, one app, ``asyncio.gather`` over the ASGI
transport, each request on its own database connection. No timing is asserted, only outcomes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from services.beneficiaries.app import create_app
from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.models import Beneficiary
from shared.outbox import OutboxMessage
from tests.beneficiaries.test_api import assert_problem, community, person
from tests.conftest import Env, running

RACERS = 8


@pytest.fixture
async def api(env: Env) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(env.settings(BeneficiariesSettings))
    async with running(app) as client:
        yield client, app


async def events_of(app: Any, subject_id: str, type_suffix: str) -> list[dict[str, Any]]:
    async with app.state.sessionmaker() as session:
        rows = (await session.execute(select(OutboxMessage))).scalars().all()
    found = []
    for row in rows:
        envelope = json.loads(row.payload)
        if envelope["type"].endswith(type_suffix) and envelope["subject"] == subject_id:
            found.append(envelope)
    return found


async def test_concurrent_patches_with_one_if_match_one_wins(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    created = await client.post("/api/v1/beneficiaries", json=person(await community(client, env)), headers=headers)
    url, etag = f"/api/v1/beneficiaries/{created.json()['id']}", created.headers["etag"]
    phones = [f"+964770000{i:04d}" for i in range(RACERS)]
    results = await asyncio.gather(*(client.patch(url, json={"phone": phone}, headers={**headers, "If-Match": etag})
                                     for phone in phones))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [412] * (RACERS - 1), [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200)
    for loser in (r for r in results if r.status_code != 200):
        assert_problem(loser, 412)
    stored = (await client.get(url, headers=headers)).json()
    assert stored["phone"] == winner.json()["phone"] and stored["version"] == 2
    updates = await events_of(app, created.json()["id"], ".beneficiary.updated.v1")
    assert [e["data"]["revision"] for e in updates] == [2]


async def test_update_carries_a_version_condition(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    created = await client.post("/api/v1/beneficiaries", json=person(await community(client, env)), headers=headers)
    statements: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE BENEFICIARIES"):
            statements.append(" ".join(statement.split()))

    event.listen(app.state.engine.sync_engine, "before_cursor_execute", capture)
    try:
        resp = await client.patch(f"/api/v1/beneficiaries/{created.json()['id']}", json={"displacement_status": "idp"},
                                  headers={**headers, "If-Match": created.headers["etag"]})
    finally:
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", capture)
    assert resp.status_code == 200, resp.text
    assert len(statements) == 1 and "AND beneficiaries.version = " in statements[0], statements


@pytest.mark.parametrize("rounds", [6])
async def test_crossed_merges_leave_one_survivor(api: Any, env: Env, rounds: int) -> None:
    client, app = api
    worker, manager = env.token("case_worker"), env.token("programme_manager")
    community_id = await community(client, env)
    pairs = []
    for i in range(rounds):
        body = person(community_id, first_name=f"Name{i}", father_name=f"Father{i}", confirm_not_duplicate=True)
        a = (await client.post("/api/v1/beneficiaries", json=body, headers=worker)).json()["id"]
        b = (await client.post("/api/v1/beneficiaries", json=body, headers=worker)).json()["id"]
        pairs.append((a, b))

    def merge(survivor: str, duplicate: str) -> Any:
        return client.post(f"/api/v1/beneficiaries/{survivor}/merge", json={"duplicate_id": duplicate},
                           headers=manager)

    results = await asyncio.gather(*(merge(x, y) for a, b in pairs for x, y in ((a, b), (b, a), (a, b), (b, a))))
    for i, (a, b) in enumerate(pairs):
        mine = results[4 * i: 4 * i + 4]
        assert sorted(r.status_code for r in mine) == [200, 409, 409, 409], [r.text for r in mine]
        for loser in (r for r in mine if r.status_code != 200):
            assert_problem(loser, 409)
        async with app.state.sessionmaker() as session:
            rows = {r.id: r for r in (await session.execute(
                select(Beneficiary).where(Beneficiary.id.in_([a, b])))).scalars()}  # type: ignore[attr-defined]
        merged = [r for r in rows.values() if r.merged_into_id]
        assert len(merged) == 1, "never two records merged into each other"
        survivor = next(r for r in rows.values() if not r.merged_into_id)
        assert merged[0].merged_into_id == survivor.id
        assert len(await events_of(app, survivor.id, ".beneficiary.merged.v1")) == 1


async def test_a_transition_raced_happens_once(api: Any, env: Env) -> None:
    """Consent withdrawal stands for every state transition (approve, disburse, complete, status)."""
    client, app = api
    headers = env.token("case_worker")
    created = await client.post("/api/v1/beneficiaries", json=person(await community(client, env)), headers=headers)
    url = f"/api/v1/beneficiaries/{created.json()['id']}/consent-withdrawal"
    results = await asyncio.gather(*(client.post(url, json={"withdrawn_on": f"2026-11-{10 + i:02d}"}, headers=headers)
                                     for i in range(RACERS)))
    assert sorted(r.status_code for r in results) == [200] + [409] * (RACERS - 1), [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200).json()
    stored = (await client.get(f"/api/v1/beneficiaries/{created.json()['id']}", headers=headers)).json()
    assert stored["consent"]["withdrawn_on"] == winner["consent"]["withdrawn_on"] and stored["version"] == 2
    events = await events_of(app, created.json()["id"], ".beneficiary.consent_withdrawn.v1")
    assert [(e["data"]["revision"], e["data"]["withdrawn_on"]) for e in events] == [
        (2, winner["consent"]["withdrawn_on"])]
