"""Consent: never dated in the future; withdrawal is an audited transition with a pseudonymous event."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.beneficiaries.app import create_app
from services.beneficiaries.config import BeneficiariesSettings
from shared.audit import AuditEntry
from shared.events.beneficiaries import BeneficiaryConsentWithdrawn
from tests.beneficiaries.test_api import assert_problem, community, person
from tests.beneficiaries.test_concurrency import events_of
from tests.conftest import Env, running


@pytest.fixture
async def api(env: Env) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(env.settings(BeneficiariesSettings))
    async with running(app) as client:
        yield client, app


async def test_consent_in_the_future_is_refused(api: Any, env: Env) -> None:
    client, _ = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    future = (date.today() + timedelta(days=3)).isoformat()
    body = assert_problem(await client.post("/api/v1/beneficiaries", headers=headers, json=person(
        community_id, consent={"given": True, "obtained_on": future})), 422)
    assert body["errors"][0]["loc"] == ["body", "consent", "obtained_on"]
    today = date.today().isoformat()
    ok = await client.post("/api/v1/beneficiaries", headers=headers,
                           json=person(community_id, consent={"given": True, "obtained_on": today}))
    assert ok.status_code == 201, ok.text
    assert ok.json()["consent"] == {"given": True, "obtained_on": today, "withdrawn_on": None,
                                    "withdrawal_reason": None}


async def test_consent_withdrawal(api: Any, env: Env) -> None:
    client, app = api
    worker = env.token("case_worker", sub="clerk-9")
    created = (await client.post("/api/v1/beneficiaries", json=person(await community(client, env)),
                                 headers=worker)).json()
    url = f"/api/v1/beneficiaries/{created['id']}/consent-withdrawal"
    body = {"withdrawn_on": "2026-11-10", "reason": "Moved away; asked Um Ali at the centre to erase her data"}
    assert_problem(await client.post(url, json=body), 401)
    assert_problem(await client.post(url, json=body, headers=env.token("me_officer")), 403)
    assert_problem(await client.post("/api/v1/beneficiaries/nobody/consent-withdrawal", json=body, headers=worker), 404)
    assert_problem(await client.post(url, json=body, headers=env.token("case_worker", governorates=("IQG01",))), 404)
    future = (date.today() + timedelta(days=3)).isoformat()
    for bad in ({"withdrawn_on": future}, {"withdrawn_on": "2026-10-01"}, {}, {**body, "extra": 1},
                {**body, "reason": "a\x00b"}):
        assert_problem(await client.post(url, json=bad, headers=worker), 422)
    assert_problem(await client.post(url, json=body, headers={**worker, "If-Match": f'"{created["id"]}.7"'}), 412)

    done = await client.post(url, json=body, headers=worker)
    assert done.status_code == 200, done.text
    assert done.json()["consent"] == {"given": False, "obtained_on": "2026-11-01", "withdrawn_on": "2026-11-10",
                                      "withdrawal_reason": body["reason"]}
    assert done.json()["version"] == 2 and done.headers["etag"] == f'"{created["id"]}.2"'
    got = await client.get(f"/api/v1/beneficiaries/{created['id']}", headers=worker)
    assert got.json()["consent"]["given"] is False
    again = assert_problem(await client.post(url, json=body, headers=worker), 409)
    assert again["type"] == "urn:crp:problem:consent-withdrawn"

    events = await events_of(app, created["id"], ".beneficiary.consent_withdrawn.v1")
    assert len(events) == 1 and events[0]["type"] == BeneficiaryConsentWithdrawn.event_type()
    assert events[0]["type"] == "crp.beneficiaries.beneficiary.consent_withdrawn.v1"
    assert events[0]["data"] == {"beneficiary_id": created["id"], "revision": 2, "withdrawn_on": "2026-11-10"}
    async with app.state.sessionmaker() as session:
        entry = (await session.execute(select(AuditEntry).where(AuditEntry.entity_id == created["id"],
                                                                AuditEntry.action == "consent_withdrawn"))).scalar_one()
    assert entry.actor == "clerk-9" and json.loads(entry.fields) == ["reason", "withdrawn_on"]
    assert "Um Ali" not in json.dumps(events) and "Um Ali" not in entry.fields


async def test_withdrawal_on_a_merged_record_is_409(api: Any, env: Env) -> None:
    client, _ = api
    worker, manager = env.token("case_worker"), env.token("programme_manager")
    community_id = await community(client, env)
    a = (await client.post("/api/v1/beneficiaries", json=person(community_id), headers=worker)).json()["id"]
    b = (await client.post("/api/v1/beneficiaries", json=person(community_id, confirm_not_duplicate=True),
                           headers=worker)).json()["id"]
    assert (await client.post(f"/api/v1/beneficiaries/{a}/merge", json={"duplicate_id": b},
                              headers=manager)).status_code == 200
    resp = await client.post(f"/api/v1/beneficiaries/{b}/consent-withdrawal", json={"withdrawn_on": "2026-11-10"},
                             headers=worker)
    assert a in assert_problem(resp, 409)["detail"]


async def test_a_merge_carries_a_withdrawal_to_the_survivor(api: Any, env: Env) -> None:
    client, app = api
    worker, manager = env.token("case_worker"), env.token("programme_manager")
    community_id = await community(client, env)
    a = (await client.post("/api/v1/beneficiaries", json=person(community_id), headers=worker)).json()["id"]
    b = (await client.post("/api/v1/beneficiaries", json=person(community_id, confirm_not_duplicate=True),
                           headers=worker)).json()["id"]
    withdrawn = await client.post(f"/api/v1/beneficiaries/{b}/consent-withdrawal", json={"withdrawn_on": "2026-11-12"},
                                  headers=worker)
    assert withdrawn.status_code == 200, withdrawn.text
    merged = await client.post(f"/api/v1/beneficiaries/{a}/merge", json={"duplicate_id": b}, headers=manager)
    assert merged.status_code == 200, merged.text
    assert merged.json()["consent"]["given"] is False and merged.json()["consent"]["withdrawn_on"] == "2026-11-12"
    events = await events_of(app, a, ".beneficiary.consent_withdrawn.v1")
    assert [e["data"] for e in events] == [{"beneficiary_id": a, "revision": merged.json()["version"],
                                            "withdrawn_on": "2026-11-12"}]
