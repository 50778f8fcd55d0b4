"""Races on the caps (SQLite and PostgreSQL): concurrent approvals over a call's remaining budget, concurrent
disbursements over an approved amount, a transition raced twice. One wins; the others get 409 and emit nothing.

The requests really run at the same time (``asyncio.gather`` over ASGI, each on its own connection); only
outcomes are asserted, never timings.
"""

from __future__ import annotations

import asyncio
from datetime import date

from tests.beneficiaries.test_api import assert_problem
from tests.conftest import Env
from tests.grants.conftest import Grants

RACERS = 6


async def test_concurrent_approvals_over_the_remaining_budget_one_wins(grants: Grants, env: Env) -> None:
    call = await grants.call(budget="1000.00")
    ids = []
    for _ in range(RACERS):
        resp = await grants.apply(await grants.register(), call["id"], amount_requested="600.00")
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    manager = env.token("programme_manager")
    results = await asyncio.gather(*(grants.client.post(f"/api/v1/grants/{gid}/approval",
                                                        json={"amount_approved": "600.00"}, headers=manager)
                                     for gid in ids))
    assert sorted(r.status_code for r in results) == [200] + [409] * (RACERS - 1), [r.text for r in results]
    for loser in (r for r in results if r.status_code != 200):
        assert assert_problem(loser, 409)["type"] in ("urn:crp:problem:over-budget",
                                                      "urn:crp:problem:concurrent-change")
    stored = (await grants.client.get(f"/api/v1/grant-calls/{call['id']}", headers=manager)).json()
    assert float(stored["committed_amount"]) == 600
    assert len(await grants.events(".grant.approved.v1")) == 1
    approved = await grants.client.get("/api/v1/grants", params={"call_id": call["id"], "status": "approved"},
                                       headers=manager)
    assert len(approved.json()["items"]) == 1


async def test_one_approval_raced_happens_once(grants: Grants, env: Env) -> None:
    call = await grants.call(budget="100000.00")
    gid = (await grants.apply(await grants.register(), call["id"])).json()["id"]
    manager = env.token("programme_manager")
    results = await asyncio.gather(*(grants.client.post(f"/api/v1/grants/{gid}/approval",
                                                        json={"amount_approved": f"{1000 + i}.00"}, headers=manager)
                                     for i in range(RACERS)))
    assert sorted(r.status_code for r in results) == [200] + [409] * (RACERS - 1), [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200).json()
    stored = (await grants.client.get(f"/api/v1/grant-calls/{call['id']}", headers=manager)).json()
    assert stored["committed_amount"] == winner["amount_approved"]
    assert len(await grants.events(".grant.approved.v1")) == 1


async def test_concurrent_disbursements_never_exceed_the_approved_amount(grants: Grants, env: Env) -> None:
    grant = await grants.approved("1000.00")
    results = await asyncio.gather(*(grants.disburse(grant["id"], "600.00") for _ in range(RACERS)))
    assert sorted(r.status_code for r in results) == [201] + [409] * (RACERS - 1), [r.text for r in results]
    got = (await grants.client.get(f"/api/v1/grants/{grant['id']}", headers=env.token("viewer"))).json()
    assert float(got["disbursed_amount"]) == 600 and got["status"] == "disbursing"
    assert len(await grants.events(".disbursement.made.v1")) == 1


async def test_a_reversal_raced_happens_once(grants: Grants, env: Env) -> None:
    grant = await grants.approved("1000.00")
    made = (await grants.disburse(grant["id"], "1000.00")).json()
    url = f"/api/v1/grants/{grant['id']}/disbursements/{made['id']}/reversal"
    body = {"reason": "Returned by the bank", "reversed_on": date.today().isoformat()}
    results = await asyncio.gather(*(grants.client.post(url, json=body, headers=env.token("programme_manager"))
                                     for _ in range(RACERS)))
    assert sorted(r.status_code for r in results) == [200] + [409] * (RACERS - 1), [r.text for r in results]
    got = (await grants.client.get(f"/api/v1/grants/{grant['id']}", headers=env.token("viewer"))).json()
    assert float(got["disbursed_amount"]) == 0 and got["status"] == "approved"
    assert len(await grants.events(".disbursement.reversed.v1")) == 1


async def test_concurrent_applications_of_one_person_to_one_call_one_wins(grants: Grants, env: Env) -> None:
    call = await grants.call()
    who = await grants.register()
    results = await asyncio.gather(*(grants.apply(who, call["id"]) for _ in range(RACERS)))
    assert sorted(r.status_code for r in results) == [201] + [409] * (RACERS - 1), [r.text for r in results]
    assert len(await grants.events(".grant.submitted.v1")) == 1
