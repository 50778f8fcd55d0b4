"""The grants service over HTTP: every endpoint's guards, the lifecycle, the caps, the monitoring gate,
reversals, merges, consent, the beneficiaries service down, idempotent disbursements."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.cli import free_port
from services.grants.app import create_app
from services.grants.config import GrantsSettings
from services.grants.models import Disbursement, Grant
from shared.audit import AuditEntry
from tests.beneficiaries.test_api import assert_problem, community
from tests.conftest import Env, running
from tests.grants.conftest import Grants

TODAY = date.today().isoformat()
MISSING = "00000000-0000-4000-8000-000000000000"


async def test_every_endpoint_refuses_no_token_wrong_role_out_of_scope_unknown_and_bad_input(grants: Grants,
                                                                                          env: Env) -> None:
    client = grants.client
    call = await grants.call(criteria=[{"name": "viability", "weight": 2}, {"name": "need", "weight": 1}])
    grant = await grants.approved(call_id=call["id"])
    gid = grant["id"]
    disbursed = await grants.disburse(gid, "100.00")
    assert disbursed.status_code == 201, disbursed.text
    did = disbursed.json()["id"]
    elsewhere = ("IQG01",)  # the person lives in Ninewa (IQG15)
    visit = {"visited_on": TODAY, "business_operating": True, "monthly_income_band": "250k_500k"}
    support = {"kind": "coaching", "held_on": TODAY, "topic": "Bookkeeping", "provider": "Mercy Corps"}
    # (method, path, valid body, a role that may, a role that may not, a bad body, scoped by the person?)
    endpoints: list[tuple[str, str, Any, str, str, Any, bool]] = [
        ("POST", "/api/v1/grant-calls", None, "programme_manager", "case_worker", {"name": "x"}, False),
        ("GET", "/api/v1/grant-calls", None, "viewer", "cfm_officer", None, False),
        ("GET", f"/api/v1/grant-calls/{call['id']}", None, "viewer", "cfm_officer", None, False),
        ("GET", f"/api/v1/grant-calls/{call['id']}/shortlist", None, "viewer", "cfm_officer", None, False),
        ("POST", "/api/v1/grants", None, "case_worker", "me_officer", {"beneficiary_id": 1}, False),
        ("GET", "/api/v1/grants", None, "me_officer", "cfm_officer", None, False),
        ("GET", f"/api/v1/grants/{gid}", None, "viewer", "cfm_officer", None, True),
        ("POST", f"/api/v1/grants/{gid}/scores", {"marks": {"viability": 5, "need": 5}}, "case_worker", "viewer",
         {"marks": {"viability": "x"}}, True),
        ("POST", f"/api/v1/grants/{gid}/approval", {"amount_approved": "1.00"}, "programme_manager", "case_worker",
         {"amount_approved": "-1"}, True),
        ("POST", f"/api/v1/grants/{gid}/rejection", {"reason": "x"}, "programme_manager", "case_worker",
         {"reason": ""}, True),
        ("POST", f"/api/v1/grants/{gid}/cancellation", {}, "programme_manager", "case_worker", {"why": 1}, True),
        ("POST", f"/api/v1/grants/{gid}/withdrawal", {}, "case_worker", "me_officer", {"reason": 3}, True),
        ("POST", f"/api/v1/grants/{gid}/disbursements", {"amount": "1.00", "disbursed_on": TODAY},
         "programme_manager", "case_worker", {"amount": "0", "disbursed_on": "3000-01-01"}, True),
        ("GET", f"/api/v1/grants/{gid}/disbursements", None, "viewer", "cfm_officer", None, True),
        ("POST", f"/api/v1/grants/{gid}/disbursements/{did}/reversal", {"reason": "x", "reversed_on": TODAY},
         "programme_manager", "me_officer", {"reason": "x"}, True),
        ("POST", f"/api/v1/grants/{gid}/support-sessions", support, "case_worker", "me_officer",
         {**support, "kind": "lecture"}, True),
        ("GET", f"/api/v1/grants/{gid}/support-sessions", None, "viewer", "cfm_officer", None, True),
        ("POST", f"/api/v1/grants/{gid}/monitoring-visits", visit, "me_officer", "case_worker",
         {**visit, "latitude": 36.3}, True),
        ("GET", f"/api/v1/grants/{gid}/monitoring-visits", None, "viewer", "cfm_officer", None, True),
    ]
    for method, path, body, allowed, forbidden, bad, scoped in endpoints:
        payload = body if body is not None else ({} if method == "POST" else None)
        where = f"{method} {path}"
        assert_problem(await client.request(method, path, json=payload), 401), where
        assert_problem(await client.request(method, path, json=payload, headers=env.token(forbidden)), 403), where
        if bad is not None:
            got = assert_problem(await client.request(method, path, json=bad, headers=env.token(allowed)), 422)
            assert got["errors"], where
        if scoped:
            hidden = await client.request(method, path, json=payload,
                                          headers=env.token(allowed, governorates=elsewhere))
            assert_problem(hidden, 404)
            unknown = await client.request(method, path.replace(gid, MISSING), json=payload,
                                           headers=env.token(allowed))
            assert_problem(unknown, 404)
    assert_problem(await client.get(f"/api/v1/grant-calls/{MISSING}", headers=env.token("viewer")), 404)
    assert_problem(await client.get(f"/api/v1/grant-calls/{MISSING}/shortlist", headers=env.token("viewer")), 404)
    assert_problem(await client.post(f"/api/v1/grants/{gid}/disbursements/{MISSING}/reversal", headers=env.token(
        "programme_manager"), json={"reason": "x", "reversed_on": TODAY}), 404)
    # Lists never show what a 404 hides.
    scoped_list = await client.get("/api/v1/grants", headers=env.token("viewer", governorates=elsewhere))
    assert scoped_list.status_code == 200 and scoped_list.json()["items"] == []
    # The valid calls of the table answer: reading.
    for method, path, _, allowed, _, _, _ in endpoints:
        if method == "GET":
            resp = await client.get(path, headers=env.token(allowed))
            assert resp.status_code == 200, (path, resp.text)


async def test_full_lifecycle_scoring_shortlist_support_monitoring_and_audit(grants: Grants, env: Env) -> None:
    client = grants.client
    manager, worker = env.token("programme_manager", sub="pm-1"), env.token("case_worker", sub="cw-2")
    call = await grants.call(tranches=2, monitoring_required=True,
                             criteria=[{"name": "viability", "weight": 3, "max_score": 10},
                                       {"name": "need", "weight": 1, "max_score": 5}],
                             eligibility={"displacement_statuses": ["returnee", "idp"], "min_age": 18,
                                          "max_age": 60, "governorates": ["IQG15"], "disability_priority": True})
    assert call["committed_amount"] == "0.00" or float(call["committed_amount"]) == 0
    home = await community(grants.people, env)
    strong, weak = await grants.register(home), await grants.register(home, first_name="Zaid", father_name="Omar")
    applied = {}
    for who in (strong, weak):
        resp = await grants.apply(who, call["id"])
        assert resp.status_code == 201, resp.text
        assert resp.json()["status"] == "submitted" and resp.json()["governorate_pcode"] == "IQG15"
        applied[who] = resp.json()["id"]
    marks = {strong: {"viability": 9, "need": 4}, weak: {"viability": 3, "need": 1}}
    for who, scorer in ((strong, manager), (strong, worker), (weak, worker)):
        resp = await client.post(f"/api/v1/grants/{applied[who]}/scores", json={"marks": marks[who]}, headers=scorer)
        assert resp.status_code == 201, resp.text
    bad_marks = await client.post(f"/api/v1/grants/{applied[weak]}/scores", headers=worker,
                                  json={"marks": {"viability": 11, "colour": 1}})
    assert {tuple(e["loc"]) for e in assert_problem(bad_marks, 422)["errors"]} == {
        ("body", "marks", "colour"), ("body", "marks", "need"), ("body", "marks", "viability")}
    shortlist = (await client.get(f"/api/v1/grant-calls/{call['id']}/shortlist", headers=manager)).json()
    assert [(s["grant_id"], s["rank"], s["scorers"]) for s in shortlist] == [(applied[strong], 1, 2),
                                                                           (applied[weak], 2, 1)]
    assert shortlist[0]["score"] == pytest.approx((3 * 0.9 + 1 * 0.8) / 4 * 100)

    gid = applied[strong]
    approved = await client.post(f"/api/v1/grants/{gid}/approval", json={"amount_approved": "1200.00"},
                                 headers=manager)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    assert float((await client.get(f"/api/v1/grant-calls/{call['id']}", headers=manager)).json()[
        "committed_amount"]) == 1200
    rejected = await client.post(f"/api/v1/grants/{applied[weak]}/rejection", json={"reason": "Not viable"},
                                 headers=manager)
    assert rejected.json()["status"] == "rejected" and rejected.json()["decision_reason"] == "Not viable"
    for path, body in (("approval", {"amount_approved": "1.00"}), ("rejection", {"reason": "x"}),
                       ("cancellation", {}), ("withdrawal", {})):
        body_ = assert_problem(await client.post(f"/api/v1/grants/{applied[weak]}/{path}", json=body,
                                                 headers=manager), 409)
        assert "rejected" in body_["detail"]

    first = await grants.disburse(gid, "600.00")
    assert first.status_code == 201 and first.json()["tranche"] == 1, first.text
    assert (await client.get(f"/api/v1/grants/{gid}", headers=manager)).json()["status"] == "disbursing"
    session = await client.post(f"/api/v1/grants/{gid}/support-sessions", headers=worker, json={
        "kind": "mentoring", "held_on": TODAY, "topic": "Pricing dairy products", "provider": "Local chamber"})
    assert session.status_code == 201, session.text
    visit = await client.post(f"/api/v1/grants/{gid}/monitoring-visits", headers=env.token("me_officer"), json={
        "visited_on": TODAY, "business_operating": True, "employees_female": 2, "employees_male": 1,
        "monthly_income_band": "500k_1m", "latitude": 36.34171, "longitude": 43.13117,
        "notes": "Abu Karim's shop by the mosque is busy"})
    assert visit.status_code == 201, visit.text
    second = await grants.disburse(gid, "600.00")
    assert second.status_code == 201 and second.json()["tranche"] == 2, second.text
    final = (await client.get(f"/api/v1/grants/{gid}", headers=manager)).json()
    assert final["status"] == "fully_disbursed" and float(final["disbursed_amount"]) == 1200
    assert_problem(await grants.disburse(gid, "1.00"), 409)
    assert len((await client.get(f"/api/v1/grants/{gid}/support-sessions", headers=manager)).json()) == 1
    assert len((await client.get(f"/api/v1/grants/{gid}/monitoring-visits", headers=manager)).json()) == 1

    listed = await client.get("/api/v1/grants", params={"call_id": call["id"], "status": "fully_disbursed",
                                                        "community_id": home, "governorate": "IQG15",
                                                        "submitted_from": TODAY, "submitted_to": TODAY},
                              headers=manager)
    assert [g["id"] for g in listed.json()["items"]] == [gid]
    empty = await client.get("/api/v1/grants", params={"status": "approved", "call_id": call["id"]}, headers=manager)
    assert empty.json()["items"] == []

    async with grants.app.state.sessionmaker() as s:
        entries = (await s.execute(select(AuditEntry).where(AuditEntry.entity_id == gid))).scalars().all()
    assert [e.action for e in entries] == ["submitted", "scored", "scored", "approved", "disbursed", "disbursed"]
    assert {e.actor for e in entries} >= {"pm-1", "cw-2"}
    types = [e["type"].split(".", 2)[2] for e in await grants.events()]
    assert types.count("grant.submitted.v1") == 2 and types.count("grant.approved.v1") == 1
    assert types.count("grant.rejected.v1") == 1 and types.count("disbursement.made.v1") == 2
    assert types.count("monitoring_visit.recorded.v1") == 1
    made = (await grants.events(".disbursement.made.v1"))[0]["data"]
    assert made["beneficiary_id"] == strong and made["call_id"] == call["id"] and made["currency"] == "USD"
    assert made["sector"] == "agriculture" and made["governorate_pcode"] == "IQG15" and made["community_id"] == home
    payloads = str(await grants.events())
    for secret in ("Abu Karim", "Not viable", "mosque", "36.34171", "43.13117", "latitude", "Pricing", "أحمد"):
        assert secret not in payloads


async def test_eligibility_failures_are_each_explained(grants: Grants, env: Env) -> None:
    call = await grants.call(eligibility={"displacement_statuses": ["idp"], "max_age": 30,
                                          "governorates": ["IQG01"], "disability_required": True})
    who = await grants.register()  # a returnee born 1988, in Ninewa, no disability
    body = assert_problem(await grants.apply(who, call["id"]), 422)
    assert body["type"] == "urn:crp:problem:not-eligible" and len(body["errors"]) == 4
    text = " ".join(e["msg"] for e in body["errors"])
    for reason in ("returnee", "maximum age 30", "IQG01", "disability"):
        assert reason in text
    assert_problem(await grants.apply(who, call["id"], currency="IQD"), 422)  # not the call's currency
    assert_problem(await grants.apply(who, MISSING), 422)
    closed = await grants.call(opens_on="2026-01-01", closes_on="2026-01-31")
    assert assert_problem(await grants.apply(who, closed["id"]), 409)["type"] == "urn:crp:problem:call-not-open"
    assert await grants.count(Grant) == 0


async def test_budget_cap_and_cancellation_returns_the_money(grants: Grants, env: Env) -> None:
    manager = env.token("programme_manager")
    call = await grants.call(budget="2000.00")
    first = await grants.approved("1500.00", call_id=call["id"])
    pending = (await grants.apply(await grants.register(), call["id"])).json()
    over = assert_problem(await grants.client.post(f"/api/v1/grants/{pending['id']}/approval",
                                                   json={"amount_approved": "600.00"}, headers=manager), 409)
    assert over["type"] == "urn:crp:problem:over-budget" and over["remaining"] == "500.00"
    above_request = await grants.client.post(f"/api/v1/grants/{pending['id']}/approval",
                                             json={"amount_approved": "1600.00"}, headers=manager)
    assert_problem(above_request, 422)
    cancelled = await grants.client.post(f"/api/v1/grants/{first['id']}/cancellation", json={"reason": "Moved"},
                                         headers=manager)
    assert cancelled.json()["status"] == "cancelled", cancelled.text
    ok = await grants.client.post(f"/api/v1/grants/{pending['id']}/approval", json={"amount_approved": "1500.00"},
                                  headers=manager)
    assert ok.status_code == 200, ok.text
    withdrawn = await grants.client.post(f"/api/v1/grants/{pending['id']}/withdrawal", json={},
                                         headers=env.token("case_worker"))
    assert withdrawn.json()["status"] == "withdrawn"
    call_now = (await grants.client.get(f"/api/v1/grant-calls/{call['id']}", headers=manager)).json()
    assert float(call_now["committed_amount"]) == 0
    cancels = await grants.events(".grant.cancelled.v1")
    assert [e["data"]["by"] for e in cancels] == ["programme", "applicant"]


async def test_disbursement_cap(grants: Grants, env: Env) -> None:
    grant = await grants.approved("1000.00")  # no call: checked only against the approved amount
    assert (await grants.disburse(grant["id"], "600.00")).status_code == 201
    over = assert_problem(await grants.disburse(grant["id"], "400.01"), 409)
    assert over["type"] == "urn:crp:problem:over-disbursement" and "400.00" in over["detail"]
    assert_problem(await grants.disburse(grant["id"], "400.00", on="2020-01-01"), 422)  # before the approval
    assert (await grants.disburse(grant["id"], "400.00")).status_code == 201
    got = (await grants.client.get(f"/api/v1/grants/{grant['id']}", headers=env.token("viewer"))).json()
    assert got["status"] == "fully_disbursed" and float(got["disbursed_amount"]) == 1000
    assert_problem(await grants.disburse(grant["id"], "0.01"), 409)
    submitted = (await grants.apply(await grants.register())).json()
    assert_problem(await grants.disburse(submitted["id"], "1.00"), 409)  # not approved


async def test_monitoring_gate(grants: Grants, env: Env) -> None:
    call = await grants.call(tranches=2, monitoring_required=True)
    grant = await grants.approved("1000.00", call_id=call["id"])
    assert (await grants.disburse(grant["id"], "500.00")).status_code == 201
    gated = assert_problem(await grants.disburse(grant["id"], "500.00"), 409)
    assert gated["type"] == "urn:crp:problem:monitoring-required" and "monitoring visit" in gated["detail"]
    officer = env.token("me_officer")
    url = f"/api/v1/grants/{grant['id']}/monitoring-visits"
    closed = {"visited_on": TODAY, "business_operating": False, "monthly_income_band": "none"}
    assert (await grants.client.post(url, json=closed, headers=officer)).status_code == 201
    still = assert_problem(await grants.disburse(grant["id"], "500.00"), 409)
    assert "not operating" in still["detail"]
    operating = {**closed, "business_operating": True, "monthly_income_band": "250k_500k", "employees_female": 1}
    assert (await grants.client.post(url, json=operating, headers=officer)).status_code == 201
    assert (await grants.disburse(grant["id"], "500.00")).status_code == 201
    # A call with one tranche pays one.
    single = await grants.approved("1000.00", call_id=(await grants.call(tranches=1))["id"])
    assert (await grants.disburse(single["id"], "500.00")).status_code == 201
    assert assert_problem(await grants.disburse(single["id"], "500.00"), 409)["type"] == (
        "urn:crp:problem:too-many-tranches")
    # Monitoring before approval: there is no business yet.
    submitted = (await grants.apply(await grants.register())).json()
    assert_problem(await grants.client.post(f"/api/v1/grants/{submitted['id']}/monitoring-visits", json=operating,
                                            headers=officer), 409)


async def test_reversal_and_every_figure_follows(grants: Grants, env: Env) -> None:
    manager = env.token("programme_manager")
    grant = await grants.approved("1000.00")
    first = (await grants.disburse(grant["id"], "1000.00")).json()
    url = f"/api/v1/grants/{grant['id']}/disbursements/{first['id']}/reversal"
    assert_problem(await grants.client.post(url, json={"reason": "x", "reversed_on": "2020-01-01"}, headers=manager),
                   422)
    reversed_ = await grants.client.post(url, json={"reason": "Paid to the wrong account", "reversed_on": TODAY},
                                         headers=manager)
    assert reversed_.status_code == 200 and reversed_.json()["reversed_on"] == TODAY, reversed_.text
    got = (await grants.client.get(f"/api/v1/grants/{grant['id']}", headers=manager)).json()
    assert got["status"] == "approved" and float(got["disbursed_amount"]) == 0
    again = assert_problem(await grants.client.post(url, json={"reason": "x", "reversed_on": TODAY},
                                                    headers=manager), 409)
    assert "already reversed" in again["detail"]
    redo = await grants.disburse(grant["id"], "1000.00")  # the money can be paid again, as tranche 1
    assert redo.status_code == 201 and redo.json()["tranche"] == 1
    listed = (await grants.client.get(f"/api/v1/grants/{grant['id']}/disbursements", headers=manager)).json()
    assert [(d["amount"], d["reversed_on"]) for d in listed] == [("1000.00", TODAY), ("1000.00", None)]
    reversal = (await grants.events(".disbursement.reversed.v1"))[0]["data"]
    assert reversal["disbursement_id"] == first["id"] and reversal["amount"] == "1000.00"
    assert "wrong account" not in str(await grants.events())


async def test_merged_beneficiary_is_one_person(grants: Grants, env: Env) -> None:
    manager = env.token("programme_manager")
    home = await community(grants.people, env)
    survivor, duplicate = await grants.register(home), await grants.register(home)
    merged = await grants.people.post(f"/api/v1/beneficiaries/{survivor}/merge", json={"duplicate_id": duplicate},
                                      headers=manager)
    assert merged.status_code == 200, merged.text
    call = await grants.call()
    applied = await grants.apply(duplicate, call["id"])
    assert applied.status_code == 201 and applied.json()["beneficiary_id"] == survivor, applied.text
    again = assert_problem(await grants.apply(survivor, call["id"]), 409)
    assert again["type"] == "urn:crp:problem:already-applied" and again["grant_id"] == applied.json()["id"]
    # Merged after applying: the survivor still has that application.
    late_call = await grants.call()
    first, second = await grants.register(home), await grants.register(home)
    assert (await grants.apply(first, late_call["id"])).status_code == 201
    assert (await grants.people.post(f"/api/v1/beneficiaries/{second}/merge", json={"duplicate_id": first},
                                     headers=manager)).status_code == 200
    assert_problem(await grants.apply(second, late_call["id"]), 409)
    # Another call, or no call, is another application.
    assert (await grants.apply(survivor)).status_code == 201
    made = await grants.events(".grant.submitted.v1")
    assert made[0]["data"]["beneficiary_id"] == survivor


async def test_withdrawn_consent_refuses_new_work(grants: Grants, env: Env) -> None:
    who = await grants.register()
    approved_before = await grants.approved("500.00")
    withdrawn = await grants.people.post(f"/api/v1/beneficiaries/{who}/consent-withdrawal",
                                         json={"withdrawn_on": TODAY}, headers=env.token("case_worker"))
    assert withdrawn.status_code == 200, withdrawn.text
    body = assert_problem(await grants.apply(who), 409)
    assert body["type"] == "urn:crp:problem:consent-withdrawn" and TODAY in body["detail"]
    assert await grants.count(Grant) == 1
    owner = approved_before["beneficiary_id"]
    assert (await grants.people.post(f"/api/v1/beneficiaries/{owner}/consent-withdrawal",
                                     json={"withdrawn_on": TODAY}, headers=env.token("case_worker"))).status_code == 200
    assert assert_problem(await grants.disburse(approved_before["id"], "100.00"), 409)["type"] == (
        "urn:crp:problem:consent-withdrawn")
    assert await grants.count(Disbursement) == 0


async def test_unknown_or_out_of_scope_person_is_the_same_422(grants: Grants, env: Env) -> None:
    who = await grants.register()
    elsewhere = env.token("case_worker", governorates=("IQG01",))
    hidden = await grants.client.post("/api/v1/grants", headers=elsewhere, json={
        "beneficiary_id": who, "business_name": "x", "sector": "x", "amount_requested": "1", "currency": "USD"})
    unknown = await grants.apply(MISSING)
    assert assert_problem(hidden, 422)["errors"] == assert_problem(unknown, 422)["errors"] == [
        {"loc": ["body", "beneficiary_id"], "msg": "unknown beneficiary"}]
    assert await grants.count(Grant) == 0


async def test_beneficiaries_service_down_is_503_and_nothing_is_stored(env: Env) -> None:
    app = create_app(env.settings(GrantsSettings, upstreams={"beneficiaries": f"http://127.0.0.1:{free_port()}"}))
    async with running(app) as client:
        resp = await client.post("/api/v1/grants", headers=env.token("case_worker"), json={
            "beneficiary_id": MISSING, "business_name": "Dairy", "sector": "agriculture",
            "amount_requested": "100.00", "currency": "USD"})
        body = assert_problem(resp, 503)
        assert "nothing was stored" in body["detail"]
        async with app.state.sessionmaker() as session:
            assert (await session.execute(select(Grant))).first() is None


async def test_idempotent_disbursement_replay(grants: Grants, env: Env) -> None:
    grant = await grants.approved("1000.00")
    key = {"Idempotency-Key": "tranche-1-of-grant"}
    first = await grants.disburse(grant["id"], "400.00", headers=key)
    replay = await grants.disburse(grant["id"], "400.00", headers=key)
    assert first.status_code == replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers.get("idempotency-replayed") == "true"
    assert_problem(await grants.disburse(grant["id"], "500.00", headers=key), 422)  # the key, another body
    assert await grants.count(Disbursement) == 1
    assert len(await grants.events(".disbursement.made.v1")) == 1
    got = (await grants.client.get(f"/api/v1/grants/{grant['id']}", headers=env.token("viewer"))).json()
    assert float(got["disbursed_amount"]) == 400


async def test_grant_calls_validate_and_list(grants: Grants, env: Env) -> None:
    manager = env.token("programme_manager")
    bad = await grants.client.post("/api/v1/grant-calls", headers=manager, json={
        "name": "x", "sector": "x", "budget": "10", "currency": "EUR", "opens_on": "2026-02-01",
        "closes_on": "2026-01-01", "criteria": [{"name": "a", "weight": 0}]})
    assert {e["loc"][1] for e in assert_problem(bad, 422)["errors"]} >= {"currency", "criteria"}
    call = await grants.call(sector="dairy")
    await grants.call(sector="tailoring", opens_on="2026-01-01", closes_on="2026-01-31")
    listed = await grants.client.get("/api/v1/grant-calls", params={"sector": "dairy"}, headers=manager)
    assert [c["id"] for c in listed.json()["items"]] == [call["id"]]
    open_now = await grants.client.get("/api/v1/grant-calls", params={"open_on": TODAY}, headers=manager)
    assert [c["id"] for c in open_now.json()["items"]] == [call["id"]]
    future = (date.today() + timedelta(days=2)).isoformat()
    grant = await grants.approved("100.00")
    assert_problem(await grants.disburse(grant["id"], "10.00", on=future), 422)  # a payment in the future


async def test_a_call_without_criteria_cannot_be_scored(grants: Grants, env: Env) -> None:
    submitted = (await grants.apply(await grants.register())).json()
    resp = await grants.client.post(f"/api/v1/grants/{submitted['id']}/scores", json={"marks": {}},
                                    headers=env.token("case_worker"))
    assert assert_problem(resp, 409)["type"] == "urn:crp:problem:no-criteria"


@pytest.mark.parametrize("status", ["approved"])
async def test_transitions_the_status_does_not_allow_are_409(grants: Grants, env: Env, status: str) -> None:
    manager = env.token("programme_manager")
    grant = await grants.approved("100.00")
    assert grant["status"] == status
    for path, body in (("approval", {"amount_approved": "1.00"}), ("rejection", {"reason": "x"})):
        assert_problem(await grants.client.post(f"/api/v1/grants/{grant['id']}/{path}", json=body,
                                                headers=manager), 409)
    assert (await grants.disburse(grant["id"], "50.00")).status_code == 201
    for path in ("cancellation", "withdrawal"):  # money is out: reverse it first
        assert_problem(await grants.client.post(f"/api/v1/grants/{grant['id']}/{path}", json={},
                                                headers=manager), 409)


async def test_reads_take_no_lock_and_see_only_committed_rows(grants: Grants, env: Env) -> None:
    """The GET by id and the list of grants and of calls read without a session (shared.db.Reads): while another
    connection holds the write lock with an uncommitted change, they answer at once, with the committed values."""
    from tests.locks import answers_as_committed_while_locked

    headers = env.token("viewer")
    call = await grants.call()
    grant = await grants.approved(call_id=call["id"])
    paths = (f"/api/v1/grants/{grant['id']}", "/api/v1/grants", f"/api/v1/grant-calls/{call['id']}",
             "/api/v1/grant-calls")
    during = await answers_as_committed_while_locked(grants.client, grants.app, env.backend, "grants", grant["id"],
                                                     dict.fromkeys(paths, headers), business_name="Uncommitted")
    assert during[f"/api/v1/grants/{grant['id']}"].json()["business_name"] == grant["business_name"]
    assert during["/api/v1/grant-calls"].json()["items"][0]["name"] == call["name"]


async def test_a_read_without_session_gives_the_amounts_the_engine_gives(grants: Grants, env: Env) -> None:
    """Amounts (NUMERIC) and scores (floats) read through ``shared.db.Reads`` (on PostgreSQL straight from asyncpg)
    are the values and types the engine gives: decimals with their two places, floats, JSON, dates."""
    from sqlalchemy import Float, Numeric, bindparam, column

    from services.grants.models import GrantCall
    from shared.db import _ENGINE, _compile_for_driver
    from tests.locks import read_as_the_engine

    call = await grants.call(criteria=[{"name": "viability", "weight": 2}])
    grant = await grants.approved("1234.50", call_id=call["id"])
    await grants.disburse(grant["id"], "100.05")
    for model, id_ in ((Grant, grant["id"]), (GrantCall, call["id"])):
        table: Any = model.__table__
        stmt = select(*table.c).where(table.c.id == bindparam("id"))
        # The first read of a kept statement goes through the engine, the next ones through the driver.
        await read_as_the_engine(grants.app, stmt, {"id": id_})
        if env.backend == "postgresql":
            assert _compile_for_driver(stmt, grants.app.state.engine.dialect) is not _ENGINE
    read = await grants.app.state.reads.first(select(*Grant.__table__.c).where(Grant.id == grant["id"]))
    assert str(read.amount_approved) == "1234.50" and str(read.disbursed_amount) == "100.05"
    if env.backend == "postgresql":  # SQLAlchemy converts these: read through the engine
        dialect = grants.app.state.engine.dialect
        assert _compile_for_driver(select(column("x", Numeric(asdecimal=False))), dialect) is _ENGINE
        assert _compile_for_driver(select(column("x", Float(asdecimal=True))), dialect) is _ENGINE
