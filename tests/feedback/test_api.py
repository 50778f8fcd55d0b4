"""The feedback service over HTTP: per endpoint no token and wrong role; intake validation and sealed storage;
the anonymous flow (reference and PIN, wrong PINs throttled per reference and per client, in the database);
service levels with a controllable clock and the overdue list; lifecycle, referral, response and closing the
loop; resource centres; community activities with participant validation; nothing personal in events, audit
or logs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select

from services.feedback.models import Feedback, FeedbackHistory, PinThrottle
from services.feedback.routes import routers
from shared.audit import AuditEntry
from tests.beneficiaries.test_api import assert_problem
from tests.conftest import Env
from tests.feedback.conftest import Platform, start

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def test_no_token_and_wrong_role_on_every_endpoint(platform: Platform) -> None:
    client, some = platform.feedback, UNKNOWN
    endpoints = [
        ("POST", "/api/v1/feedback", "viewer"),
        ("GET", "/api/v1/feedback", "case_worker"),
        ("GET", "/api/v1/feedback/overdue", "me_officer"),
        ("GET", "/api/v1/feedback/counts", "case_worker"),
        ("GET", "/api/v1/feedback/service-levels", "partner_system"),
        ("GET", f"/api/v1/feedback/{some}", "viewer"),
        ("GET", f"/api/v1/feedback/{some}/history", "me_officer"),
        ("GET", f"/api/v1/feedback/{some}/audit", "case_worker"),
        ("POST", f"/api/v1/feedback/{some}/status", "case_worker"),
        ("POST", f"/api/v1/feedback/{some}/referral", "partner_system"),
        ("POST", f"/api/v1/feedback/{some}/response", "me_officer"),
        ("POST", f"/api/v1/feedback/{some}/pin", "case_worker"),
        ("POST", "/api/v1/resource-centres", "cfm_officer"),
        ("GET", "/api/v1/resource-centres", None),
        ("GET", f"/api/v1/resource-centres/{some}", None),
        ("PATCH", f"/api/v1/resource-centres/{some}", "case_worker"),
        ("POST", "/api/v1/community-activities", "cfm_officer"),
        ("GET", "/api/v1/community-activities", "partner_system"),
        ("GET", f"/api/v1/community-activities/{some}", "psea_focal_point"),
    ]
    for method, path, wrong_role in endpoints:
        body = {} if method in ("POST", "PATCH") else None
        assert_problem(await client.request(method, path, json=body), 401)
        if wrong_role:
            assert_problem(await client.request(method, path, json=body, headers=platform.token(wrong_role)), 403)
    assert len([p for p in platform.app.openapi()["paths"] if p.startswith("/api/")]) == 16
    # the public status page needs no token (a wrong reference is a 404, not a 401)
    assert_problem(await client.get("/api/v1/public/feedback/FB-AAAAAAAA/status",
                                    headers={"X-Feedback-PIN": "123456"}), 404)
    names = {route.name for router in routers for route in router.routes}  # the operations' names
    assert {"submit_feedback", "get_public_feedback_status", "change_feedback_status", "refer_feedback",
            "record_community_activity", "create_resource_centre", "list_overdue_feedback"} <= names


async def test_intake_validates_and_seals_what_is_personal(platform: Platform) -> None:
    client, cfm = platform.feedback, platform.token("cfm_officer")
    mosul = await platform.community()
    base = {"channel": "whatsapp", "category": "assistance_request", "description": "My tent leaks, Um Ali",
            "community_id": mosul, "anonymous": False, "contact": "+964 750 999 8877"}
    for bad in ({"channel": "pigeon"}, {"category": "other"}, {"description": ""}, {"description": "x" * 4001},
                {"anonymous": True}, {"contact": "c" * 201}, {"unknown": 1}, {"description": "bad\x00text"},
                {"anonymous": None}):
        body = assert_problem(await client.post("/api/v1/feedback", json={**base, **bad}, headers=cfm), 422)
        assert "Um Ali" not in str(body) and "750 999" not in str(body)
    for community in (UNKNOWN, "../../healthz"):
        body = assert_problem(await client.post("/api/v1/feedback", json={**base, "community_id": community},
                                                headers=cfm), 422)
        assert body["errors"] == [{"loc": ["body", "community_id"], "msg": "unknown community"}]
    resp = await client.post("/api/v1/feedback", json=base, headers={**cfm, "Idempotency-Key": "intake-1"})
    assert resp.status_code == 201, resp.text
    receipt = resp.json()
    assert receipt["reference"].startswith("FB-") and len(receipt["reference"]) == 11
    assert receipt["pin"].isdigit() and len(receipt["pin"]) == 6
    assert (receipt["status"], receipt["sensitive"]) == ("received", False)
    assert receipt["received_at"] == "2026-11-02T08:00:00Z" and receipt["resolve_due_at"] == "2026-12-02T08:00:00Z"
    replay = await client.post("/api/v1/feedback", json=base, headers={**cfm, "Idempotency-Key": "intake-1"})
    assert replay.headers["Idempotency-Replayed"] == "true"
    assert replay.json() == {**receipt, "pin": None}  # the PIN is shown once
    assert await platform.count(Feedback) == 1
    case = (await client.get(f"/api/v1/feedback/{receipt['id']}", headers=cfm)).json()
    assert (case["description"], case["contact"], case["governorate_pcode"]) == (
        "My tent leaks, Um Ali", "+964 750 999 8877", "IQG15")
    async with platform.app.state.sessionmaker() as session:
        row = await session.get(Feedback, receipt["id"])
        stored = " ".join(str(v) for v in row.model_dump().values())
        audit = " ".join(a.fields for a in (await session.execute(select(AuditEntry))).scalars())
    assert "Um Ali" not in stored and "999 8877" not in stored and receipt["pin"] not in stored
    assert row.description_sealed.startswith("s1.k1.")
    assert "Um Ali" not in audit and "999" not in audit
    anonymous = await client.post("/api/v1/feedback", headers=cfm, json={
        "channel": "suggestion_box", "category": "appreciation", "description": "Thank you", "anonymous": True})
    assert anonymous.status_code == 201
    case = (await client.get(f"/api/v1/feedback/{anonymous.json()['id']}", headers=cfm)).json()
    assert (case["anonymous"], case["contact"], case["community_id"]) == (True, None, None)


async def test_anonymous_flow_follow_with_reference_and_pin(platform: Platform) -> None:
    client, cfm = platform.feedback, platform.token("cfm_officer")
    resp = await client.post("/api/v1/feedback", headers=cfm, json={
        "channel": "sms", "category": "minor_dissatisfaction", "description": "Distribution started late",
        "community_id": await platform.community(), "anonymous": True})
    receipt = resp.json()
    path = f"/api/v1/public/feedback/{receipt['reference']}/status"
    pin = {"X-Feedback-PIN": receipt["pin"]}
    status = await client.get(path, headers=pin)
    assert status.status_code == 200, status.text
    assert status.json() == {"reference": receipt["reference"], "status": "received", "response": None,
                             "updated_at": status.json()["updated_at"]}
    assert (await client.get(path.replace("FB-", "fb-"), headers=pin)).status_code == 200  # read out, typed low
    assert (await platform.move(receipt["id"], "in_progress", note="Internal: ask the warehouse")).status_code == 200
    await client.post(f"/api/v1/feedback/{receipt['id']}/response", headers=cfm,
                      json={"response": "The schedule now starts at 9."})
    status = (await client.get(path, headers=pin)).json()
    assert (status["status"], status["response"]) == ("in_progress", "The schedule now starts at 9.")
    assert "warehouse" not in str(status)  # internal notes never show
    # no PIN, a wrong PIN, an unknown reference: the same 404
    for headers, target in (({}, path), ({"X-Feedback-PIN": "000000"}, path),
                            (pin, "/api/v1/public/feedback/FB-ZZZZZZZZ/status")):
        body = assert_problem(await client.get(target, headers=headers), 404)
        assert body["detail"] == "No case with this reference and PIN"


async def test_wrong_pins_are_throttled_per_reference_and_per_client(platform: Platform) -> None:
    client = platform.feedback
    mosul = await platform.community()
    receipt = await platform.submit(mosul)
    path = f"/api/v1/public/feedback/{receipt['reference']}/status"
    wrong = "999999" if receipt["pin"] != "999999" else "111111"
    client_a = {"X-Forwarded-For": "203.0.113.7"}  # the gateway (a trusted proxy) says who the caller is
    for _ in range(4):
        assert_problem(await client.get(path, headers={**client_a, "X-Feedback-PIN": wrong}), 404)
    assert (await client.get(path, headers={**client_a, "X-Feedback-PIN": receipt["pin"]})).status_code == 200
    for _ in range(5):  # the right PIN cleared the reference's count: five more wrong ones lock it
        assert_problem(await client.get(path, headers={**client_a, "X-Feedback-PIN": wrong}), 404)
    for who in (client_a, {"X-Forwarded-For": "198.51.100.9"}):  # the reference is locked, for everyone
        locked = await client.get(path, headers={**who, "X-Feedback-PIN": receipt["pin"]})
        body = assert_problem(locked, 429)  # even the right PIN, until the lock-out ends
        assert locked.headers["Retry-After"] == "900" and body["retry_after"] == 900
    async with platform.app.state.sessionmaker() as session:  # stored: holds across replicas and restarts
        row = await session.get(PinThrottle, f"ref:{receipt['reference']}")
        assert row is not None and row.locked_until is not None
    platform.clock.advance(seconds=600)
    assert (await client.get(path, headers={"X-Feedback-PIN": receipt["pin"]})).headers["Retry-After"] == "300"
    platform.clock.advance(seconds=301)
    assert (await client.get(path, headers={"X-Feedback-PIN": receipt["pin"]})).status_code == 200

    # one address guessing across many references is locked out after 20 wrong PINs in the window
    others = [await platform.submit(mosul) for _ in range(5)]
    guesser = {"X-Forwarded-For": "192.0.2.66", "X-Feedback-PIN": wrong}
    answers = [(await client.get(f"/api/v1/public/feedback/{others[i % 5]['reference']}/status",
                                 headers=guesser)).status_code for i in range(20)]
    assert answers == [404] * 20
    fresh = others[0]
    resp = await client.get(f"/api/v1/public/feedback/{fresh['reference']}/status",
                            headers={"X-Forwarded-For": "192.0.2.66", "X-Feedback-PIN": fresh["pin"]})
    assert_problem(resp, 429)
    ok = await client.get(f"/api/v1/public/feedback/{fresh['reference']}/status",
                          headers={"X-Forwarded-For": "192.0.2.67", "X-Feedback-PIN": fresh["pin"]})
    assert ok.status_code == 200  # another address, and each reference had only 4 wrong PINs


async def test_service_levels_with_a_controllable_clock_and_the_overdue_list(platform: Platform) -> None:
    client, cfm, psea = platform.feedback, platform.token("cfm_officer"), platform.token("psea_focal_point")
    mosul = await platform.community()
    ordinary, sensitive = await platform.submit(mosul), await platform.submit(mosul, "sea")
    assert sensitive["acknowledge_due_at"] == "2026-11-03T08:00:00Z"  # 24 hours
    assert sensitive["resolve_due_at"] == "2026-11-05T08:00:00Z"  # 72 hours
    assert ordinary["acknowledge_due_at"] == "2026-11-09T08:00:00Z"  # 7 days
    levels = {x["category"]: x for x in (await client.get("/api/v1/feedback/service-levels", headers=cfm)).json()}
    assert "sea" not in levels and levels["appreciation"]["resolve_hours"] == 720

    async def overdue(headers: dict[str, str]) -> set[str]:
        return {i["id"] for i in (await client.get("/api/v1/feedback/overdue", headers=headers)).json()["items"]}

    assert await overdue(cfm) == set() and await overdue(psea) == set()
    platform.clock.advance(hours=25)
    assert await overdue(psea) == {sensitive["id"]} and await overdue(cfm) == set()
    assert (await platform.move(sensitive["id"], "acknowledged", role="psea_focal_point")).status_code == 200
    assert (await platform.move(ordinary["id"], "acknowledged")).status_code == 200
    assert await overdue(psea) == set()
    platform.clock.advance(hours=48)  # 73 hours: the sensitive case is past its resolution level
    assert await overdue(psea) == {sensitive["id"]}
    filtered = await client.get("/api/v1/feedback?overdue=false", headers=cfm)
    assert [i["id"] for i in filtered.json()["items"]] == [ordinary["id"]]
    resolved = await platform.move(sensitive["id"], "resolved", role="psea_focal_point")
    case = resolved.json()
    assert (case["acknowledged_within_service_level"], case["resolved_within_service_level"]) == (False, False)
    platform.clock.advance(days=2)
    case = (await platform.move(ordinary["id"], "resolved")).json()
    assert (case["acknowledged_within_service_level"], case["resolved_within_service_level"]) == (True, True)
    assert case["overdue"] is False
    events = await platform.events(".status_changed.v1")
    met = {(e["data"]["category"], e["data"]["status"]): e["data"]["resolved_within_service_level"] for e in events}
    assert met[("sea", "resolved")] is False and met[("minor_dissatisfaction", "resolved")] is True
    platform.clock.advance(days=30)  # a resolved case is never overdue
    assert await overdue(cfm) == set()


async def test_service_levels_are_configurable(env: Env) -> None:
    levels = {"sea": {"acknowledge_hours": 2, "resolve_hours": 12}, "appreciation": {"acknowledge_hours": 48,
                                                                                      "resolve_hours": 96}}
    async for platform in start(env, feedback_service_levels=levels):
        mosul = await platform.community()
        sea, thanks = await platform.submit(mosul, "sea"), await platform.submit(mosul, "appreciation")
        assert (sea["acknowledge_due_at"], sea["resolve_due_at"]) == ("2026-11-02T10:00:00Z", "2026-11-02T20:00:00Z")
        assert thanks["resolve_due_at"] == "2026-11-06T08:00:00Z"
        other = await platform.submit(mosul, "fraud_corruption")  # not configured: the sensitive default
        assert other["resolve_due_at"] == "2026-11-05T08:00:00Z"


async def test_lifecycle_referral_response_and_closing_the_loop(platform: Platform) -> None:
    client, cfm = platform.feedback, platform.token("cfm_officer")
    case = await platform.submit(await platform.community())
    url = f"/api/v1/feedback/{case['id']}"
    for bad in ({"status": "referred"}, {"status": "referred", "referred_to": "Health directorate"},
                {"status": "resolved", "referred_to": "x", "referral_consent": True},
                {"status": "in_progress", "satisfaction": "satisfied"}, {"status": "received"},
                {"status": "closed", "satisfaction": "delighted"}):
        assert_problem(await client.post(f"{url}/status", json=bad, headers=cfm), 422)
    assert assert_problem(await platform.move(case["id"], "closed"), 409)["type"].endswith("invalid-transition")
    platform.clock.advance(hours=3)
    assert (await platform.move(case["id"], "acknowledged", note="Called back")).status_code == 200
    assert_problem(await platform.move(case["id"], "acknowledged"), 409)
    platform.clock.advance(days=1)
    referred = await client.post(f"{url}/referral", headers={**cfm, "Idempotency-Key": "refer-1"}, json={
        "referred_to": "Directorate of Water, Mosul", "consent": True, "note": "Pump part needed"})
    assert referred.status_code == 200, referred.text
    assert (referred.json()["status"], referred.json()["referral_consent"]) == ("referred", True)
    assert "Directorate" not in referred.text  # an action's answer has no text (it is kept under the key)
    assert (await client.get(url, headers=cfm)).json()["referral"] == {
        "referred_to": "Directorate of Water, Mosul", "consent": True, "referred_at": "2026-11-03T11:00:00Z"}
    assert (await platform.move(case["id"], "resolved")).status_code == 200
    no_response = assert_problem(await platform.move(case["id"], "closed", satisfaction="satisfied"), 409)
    assert no_response["type"] == "urn:crp:problem:no-response"
    await client.post(f"{url}/response", headers=cfm, json={"response": "The pump was repaired on Monday."})
    assert (await platform.move(case["id"], "in_progress", note="Pump failed again")).status_code == 200  # reopened
    assert (await platform.move(case["id"], "resolved")).status_code == 200
    closed = await platform.move(case["id"], "closed", satisfaction="partly_satisfied")
    assert closed.status_code == 200
    assert (closed.json()["status"], closed.json()["satisfaction"]) == ("closed", "partly_satisfied")
    for status in ("in_progress", "resolved", "acknowledged"):
        assert_problem(await platform.move(case["id"], status), 409)
    assert_problem(await client.post(f"{url}/response", headers=cfm, json={"response": "late"}), 409)
    history = (await client.get(f"{url}/history", headers=cfm)).json()
    assert [(h["previous_status"], h["status"]) for h in history] == [
        (None, "received"), ("received", "acknowledged"), ("acknowledged", "referred"), ("referred", "resolved"),
        ("resolved", "in_progress"), ("in_progress", "resolved"), ("resolved", "closed")]
    assert [h["at"] for h in history[:3]] == ["2026-11-02T08:00:00Z", "2026-11-02T11:00:00Z", "2026-11-03T11:00:00Z"]
    assert history[1]["note"] == "Called back" and history[2]["note"] == "Pump part needed"
    trail = (await client.get(f"{url}/audit", headers=cfm)).json()
    actions = [t["action"] for t in trail]
    assert actions[0] == "received" and "status:closed" in actions and "responded" in actions
    assert "history_read" in actions and all(t["actor"] == "tester" for t in trail)
    assert "Pump" not in str(trail)
    events = await platform.events(".status_changed.v1")
    assert [e["data"]["status"] for e in events] == ["acknowledged", "referred", "resolved", "in_progress",
                                                     "resolved", "closed"]
    assert [e["data"]["revision"] for e in events] == sorted({e["data"]["revision"] for e in events})
    text = str(await platform.events())
    for secret in ("Directorate of Water", "Pump", "repaired", "Called back", "+964", "water point"):
        assert secret not in text


async def test_resource_centres(platform: Platform) -> None:
    client, manager = platform.feedback, platform.token("programme_manager")
    mosul = await platform.community()
    for bad in ({"name": ""}, {"community_id": UNKNOWN}, {"active": "maybe"}, {"extra": 1}):
        body = {"name": "Old City centre", "community_id": mosul, **bad}
        assert_problem(await client.post("/api/v1/resource-centres", json=body, headers=manager), 422)
    centre = await platform.centre(mosul)
    assert (centre["active"], centre["governorate_pcode"], centre["district_pcode"]) == (True, "IQG15", "IQG15Q05")
    url = f"/api/v1/resource-centres/{centre['id']}"
    assert_problem(await client.patch(url, json={"active": False}, headers=manager), 428)
    etag = (await client.get(url, headers=manager)).headers["ETag"]
    closed = await client.patch(url, json={"active": False}, headers={**manager, "If-Match": etag})
    assert closed.status_code == 200 and closed.json()["active"] is False
    assert_problem(await client.patch(url, json={"active": True}, headers={**manager, "If-Match": etag}), 412)
    current = {**manager, "If-Match": closed.headers["ETag"]}
    assert_problem(await client.patch(url, json={"name": None}, headers=current), 422)
    listed = (await client.get("/api/v1/resource-centres?active=true", headers=platform.token("viewer"))).json()
    assert listed["items"] == []
    events = await platform.events()
    centre_events = [e for e in events if ".resource_centre." in e["type"]]
    assert [(e["type"].split(".")[-2], e["data"]["active"], e["data"]["revision"]) for e in centre_events] == [
        ("created", True, 1), ("updated", False, 2)]
    # feedback received at a centre takes its community when none is given
    receipt = await client.post("/api/v1/feedback", headers=platform.token("case_worker"), json={
        "channel": "help_desk", "category": "information_request", "description": "When is the next session?",
        "anonymous": True, "resource_centre_id": centre["id"]})
    assert receipt.status_code == 201, receipt.text
    case = (await client.get(f"/api/v1/feedback/{receipt.json()['id']}", headers=platform.token("cfm_officer"))).json()
    assert (case["resource_centre_id"], case["community_id"]) == (centre["id"], mosul)
    received = (await platform.events(".feedback.received.v1"))[-1]["data"]
    assert received["resource_centre_id"] == centre["id"] and received["governorate_pcode"] == "IQG15"


def _activity(community: str, **overrides: Any) -> dict[str, Any]:
    return {"kind": "reconciliation", "community_id": community, "held_on": "2026-11-20",
            "facilitators": ["Sheikh Ahmed", "Al-Amal Association"],
            "participants": {"total": 40, "female": 18, "male": 22, "idp": 10, "returnee": 12, "host_community": 15},
            "groups_represented": ["tribal_leaders", "youth", "women"], "outcome": "Agreed a return committee",
            "follow_up_actions": [{"action": "Committee meets monthly", "due_on": "2026-12-20"}], **overrides}


async def test_community_activities_validate_participants(platform: Platform) -> None:
    client, recorder = platform.feedback, platform.token("case_worker")
    mosul, ramadi = await platform.community(), await platform.community("IQG01Q03")
    people = _activity(mosul)["participants"]
    for bad in ({"participants": {**people, "total": -1}}, {"participants": {**people, "female": -2}},
                {"participants": {**people, "female": 30}},  # female + male over the total
                {"participants": {**people, "idp": 20, "returnee": 20}},  # groups over the total
                {"participants": {**people, "host_community": 41}}, {"kind": "party"},
                {"held_on": "2099-01-01"}, {"groups_represented": ["Tribal Leaders"]},
                {"participants": {"total": 3}}):
        body = assert_problem(await client.post("/api/v1/community-activities", json=_activity(mosul, **bad),
                                                headers=recorder), 422)
        assert body["errors"]
    assert_problem(await client.post("/api/v1/community-activities", json=_activity(UNKNOWN), headers=recorder), 422)
    body = assert_problem(await client.post("/api/v1/community-activities",
                                            json=_activity(mosul, resource_centre_id=UNKNOWN), headers=recorder), 422)
    assert body["errors"] == [{"loc": ["body", "resource_centre_id"], "msg": "unknown resource centre"}]
    centre = await platform.centre(mosul)
    created = await client.post("/api/v1/community-activities", headers=recorder,
                                json=_activity(mosul, resource_centre_id=centre["id"]))
    assert created.status_code == 201, created.text
    activity = created.json()
    assert activity["participants"] == people and activity["governorate_pcode"] == "IQG15"
    assert activity["follow_up_actions"] == [{"action": "Committee meets monthly", "due_on": "2026-12-20"}]
    exact = {**people, "female": 20, "male": 20, "idp": 14, "returnee": 13, "host_community": 13}
    dialogue = await client.post("/api/v1/community-activities", headers=platform.token("programme_manager"),
                                 json=_activity(ramadi, kind="dialogue", participants=exact))
    assert dialogue.status_code == 201, dialogue.text  # groups equal to the total are fine
    viewer = platform.token("viewer")
    listed = (await client.get(f"/api/v1/community-activities?kind=reconciliation&resource_centre_id={centre['id']}",
                               headers=viewer)).json()
    assert [a["id"] for a in listed["items"]] == [activity["id"]]
    anbar = platform.token("me_officer", governorates=("IQG01",))
    assert_problem(await client.get(f"/api/v1/community-activities/{activity['id']}", headers=anbar), 404)
    assert [a["id"] for a in (await client.get("/api/v1/community-activities", headers=anbar)).json()["items"]] == [
        dialogue.json()["id"]]
    events = await platform.events(".community_activity.recorded.v1")
    assert events[0]["data"]["participants_total"] == 40 and events[0]["data"]["kind"] == "reconciliation"
    text = str(events)
    assert "Sheikh" not in text and "committee" not in text.lower() and "tribal" not in text


async def test_no_description_or_contact_in_logs(platform: Platform, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client, psea = platform.feedback, platform.token("psea_focal_point")
    mosul = await platform.community()
    secret, phone = "The guard Abu Karim asked me for favours", "+964 771 555 0199"
    case = await platform.submit(mosul, "sea", description=secret, contact=phone)
    await client.post("/api/v1/feedback", headers=psea, json={  # a refused one too
        "channel": "hotline", "category": "sea", "description": secret + "\x00", "anonymous": False,
        "contact": phone})
    await client.get(f"/api/v1/feedback/{case['id']}", headers=psea)
    await platform.move(case["id"], "referred", role="psea_focal_point", referred_to="GBV case management",
                        referral_consent=False, note=secret)
    await platform.move(case["id"], "referred", role="psea_focal_point", referred_to="x", referral_consent=True)
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert caplog.records  # the requests were logged
    assert "Abu Karim" not in logged and "555 0199" not in logged and "GBV" not in logged
    events = str(await platform.events())
    assert "Abu Karim" not in events and "555 0199" not in events and "GBV" not in events
    assert await platform.count(FeedbackHistory) == 2



async def test_staff_reads_take_no_lock_see_only_committed_rows_and_keep_to_scope(platform: Platform) -> None:
    """The lists of cases (and overdue cases), of centres and of activities, and the GET of a centre and of an
    activity read without a session (shared.db.Reads): while another connection holds the write lock with an
    uncommitted change, they answer at once, with the committed values. A token for other governorates gets 404 and
    empty lists."""
    from tests.locks import answers_as_committed_while_locked

    client, cfm, pm = platform.feedback, platform.token("cfm_officer"), platform.token("programme_manager")
    mosul = await platform.community()
    case = await platform.submit(mosul)
    centre = await platform.centre(mosul)
    activity = (await client.post("/api/v1/community-activities", headers=pm, json=_activity(mosul))).json()
    platform.clock.advance(hours=24 * 30)  # the case is overdue
    paths = {"/api/v1/feedback": cfm, "/api/v1/feedback/overdue": cfm, "/api/v1/resource-centres": pm,
             f"/api/v1/resource-centres/{centre['id']}": pm, "/api/v1/community-activities": pm,
             f"/api/v1/community-activities/{activity['id']}": pm}
    during = await answers_as_committed_while_locked(client, platform.app, platform.env.backend, "resource_centres",
                                                     centre["id"], paths, name="Uncommitted")
    assert [i["id"] for i in during["/api/v1/feedback/overdue"].json()["items"]] == [case["id"]]
    assert during[f"/api/v1/resource-centres/{centre['id']}"].json() == centre
    assert during["/api/v1/resource-centres"].json()["items"] == [centre]
    assert during[f"/api/v1/community-activities/{activity['id']}"].json() == activity
    assert [i["id"] for i in during["/api/v1/feedback"].json()["items"]] == [case["id"]]
    for role in ("cfm_officer", "programme_manager"):
        anbar = platform.token(role, governorates=("IQG01",))
        for path in paths:
            resp = await client.get(path, headers=anbar)
            if path.endswith((centre["id"], activity["id"])):
                assert_problem(resp, 404)
            else:
                assert resp.status_code == 200 and resp.json()["items"] == [], path
