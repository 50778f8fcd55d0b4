"""The training service over HTTP: per endpoint no token, wrong role, out of scope, not found, bad input, valid;
enrolment rules (merges, consent, duplicates, capacity, waiting list), attendance, completion and override,
follow-ups due, matching, and the beneficiaries service down."""

from __future__ import annotations

import json
from typing import Any

import httpx
from sqlalchemy import select

from services.training.models import Course, Enrolment
from shared.outbox import OutboxMessage
from tests.beneficiaries.test_api import assert_problem
from tests.training.conftest import Platform

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def outbox_events(platform: Platform, type_suffix: str = "") -> list[dict[str, Any]]:
    async with platform.app.state.sessionmaker() as session:
        rows = (await session.execute(select(OutboxMessage))).scalars().all()
    events = [json.loads(row.payload) for row in rows]
    return [e for e in events if e["type"].endswith(type_suffix)]


async def test_no_token_and_wrong_role_on_every_endpoint(platform: Platform) -> None:
    client = platform.training
    some = UNKNOWN
    endpoints = [
        ("POST", "/api/v1/courses", "case_worker"),
        ("GET", "/api/v1/courses", "viewer"),
        ("GET", f"/api/v1/courses/{some}", "viewer"),
        ("POST", f"/api/v1/courses/{some}/enrolments", "me_officer"),
        ("POST", f"/api/v1/courses/{some}/attendance", "me_officer"),
        ("GET", "/api/v1/enrolments", "viewer"),
        ("GET", f"/api/v1/enrolments/{some}", "viewer"),
        ("POST", f"/api/v1/enrolments/{some}/completion", "me_officer"),
        ("POST", f"/api/v1/enrolments/{some}/certification", "me_officer"),
        ("POST", f"/api/v1/enrolments/{some}/dropout", "me_officer"),
        ("GET", f"/api/v1/enrolments/{some}/attendance", "viewer"),
        ("POST", f"/api/v1/enrolments/{some}/follow-ups", "case_worker"),
        ("GET", f"/api/v1/enrolments/{some}/follow-ups", "partner_system"),
        ("GET", f"/api/v1/enrolments/{some}/opportunities", "viewer"),
        ("GET", "/api/v1/follow-ups/due", "partner_system"),
        ("POST", "/api/v1/market-assessments", "case_worker"),
        ("GET", "/api/v1/market-assessments", "viewer"),
        ("GET", f"/api/v1/market-assessments/{some}", "viewer"),
        ("POST", "/api/v1/job-opportunities", "case_worker"),
        ("GET", "/api/v1/job-opportunities", "viewer"),
        ("GET", f"/api/v1/job-opportunities/{some}", "viewer"),
        ("GET", f"/api/v1/job-opportunities/{some}/trainees", "viewer"),
    ]
    for method, path, wrong_role in endpoints:
        body = {} if method == "POST" else None
        assert_problem(await client.request(method, path, json=body), 401)
        assert_problem(await client.request(method, path, json=body, headers=platform.token(wrong_role)), 403)
    assert len([p for p in platform.app.openapi()["paths"] if p.startswith("/api/")]) == 18


async def test_courses_create_validate_scope_list(platform: Platform) -> None:
    client, manager = platform.training, platform.token("programme_manager")
    mosul = await platform.community()
    course = await platform.course(mosul, completion_threshold=70, audience="local_authority_staff")
    assert (course["governorate_pcode"], course["district_pcode"]) == ("IQG15", "IQG15Q05")
    assert (course["completion_threshold"], course["enrolled_count"], course["audience"]) == (70, 0,
                                                                                             "local_authority_staff")
    default = await platform.course(mosul, planned_sessions=None)
    assert default["completion_threshold"] == 80 and default["planned_sessions"] is None
    base = {"title": "Welding", "skill_area": "welding", "community_id": mosul, "start_date": "2026-02-01",
            "end_date": "2026-03-01", "capacity": 5}
    for bad in ({"end_date": "2026-01-01"}, {"capacity": 0}, {"completion_threshold": 101}, {"skill_area": "Wel ding"},
                {"audience": "everyone"}, {"unknown": 1}, {"title": "bad\x00title"}):
        assert_problem(await client.post("/api/v1/courses", json={**base, **bad}, headers=manager), 422)
    for community in (UNKNOWN, "../../healthz"):
        body = assert_problem(await client.post("/api/v1/courses", json={**base, "community_id": community},
                                                headers=manager), 422)
        assert body["errors"] == [{"loc": ["body", "community_id"], "msg": "unknown community"}]
    anbar_only = platform.token("programme_manager", governorates=("IQG01",))
    assert_problem(await client.post("/api/v1/courses", json=base, headers=anbar_only), 422)  # out of scope
    got = await client.get(f"/api/v1/courses/{course['id']}", headers=platform.token("case_worker"))
    assert got.status_code == 200 and got.headers["etag"]
    assert_problem(await client.get(f"/api/v1/courses/{course['id']}", headers=anbar_only), 404)
    assert_problem(await client.get(f"/api/v1/courses/{UNKNOWN}", headers=manager), 404)
    listed = (await client.get("/api/v1/courses?audience=local_authority_staff", headers=manager)).json()
    assert [c["id"] for c in listed["items"]] == [course["id"]]
    assert (await client.get("/api/v1/courses", headers=anbar_only)).json()["items"] == []
    assert len((await client.get(f"/api/v1/courses?community_id={mosul}&governorate=IQG15",
                                 headers=manager)).json()["items"]) == 2


async def test_enrolment_rules(platform: Platform) -> None:
    client = platform.training
    mosul = await platform.community()
    course = await platform.course(mosul, capacity=2)
    a, b, c = [await platform.person(mosul) for _ in range(3)]
    first = await platform.enrol(course["id"], a)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "enrolled" and first.json()["beneficiary_id"] == a and first.headers["location"]
    assert_problem(await platform.enrol(course["id"], a), 409)  # the same person twice
    # b is folded into c: enrolling b enrols c, and then c is the same person
    merged = await platform.beneficiaries.post(f"/api/v1/beneficiaries/{c}/merge", json={"duplicate_id": b},
                                               headers=platform.token("programme_manager"))
    assert merged.status_code == 200, merged.text
    second = await platform.enrol(course["id"], b)
    assert second.status_code == 201 and second.json()["beneficiary_id"] == c
    assert assert_problem(await platform.enrol(course["id"], c), 409)["type"].endswith("already-enrolled")
    # a person enrolled before a merge is still the same person after it
    other = await platform.course(mosul)
    d, e = [await platform.person(mosul) for _ in range(2)]
    assert (await platform.enrol(other["id"], d)).status_code == 201
    merged = await platform.beneficiaries.post(f"/api/v1/beneficiaries/{e}/merge", json={"duplicate_id": d},
                                               headers=platform.token("programme_manager"))
    assert merged.status_code == 200, merged.text
    assert_problem(await platform.enrol(other["id"], e), 409)
    # full: 409, or the waiting list when asked
    f = await platform.person(mosul)
    assert assert_problem(await platform.enrol(course["id"], f), 409)["type"].endswith("course-full")
    waiting = await platform.enrol(course["id"], f, waitlist=True)
    assert waiting.status_code == 201 and waiting.json()["status"] == "waitlisted"
    assert waiting.json()["waitlist_position"] == 1
    assert_problem(await platform.enrol(course["id"], f, waitlist=True), 409)  # already on the list
    # withdrawn consent
    g = await platform.person(mosul)
    current = await platform.beneficiaries.get(f"/api/v1/beneficiaries/{g}", headers=platform.token("case_worker"))
    withdrawn = await platform.beneficiaries.post(f"/api/v1/beneficiaries/{g}/consent-withdrawal",
                                                  json={"withdrawn_on": "2026-11-20"},
                                                  headers={**platform.token("case_worker"),
                                                           "If-Match": current.headers["etag"]})
    assert withdrawn.status_code == 200, withdrawn.text
    assert assert_problem(await platform.enrol(other["id"], g), 409)["type"].endswith("consent-withdrawn")
    # unknown, or out of scope, person: the same 422
    for unknown in (UNKNOWN, "x" * 65):
        body = assert_problem(await platform.enrol(course["id"], unknown), 422)
        assert body["errors"] == [{"loc": ["body", "beneficiary_id"], "msg": "unknown beneficiary"}]
    anbar = await platform.community("IQG01Q03")
    anbar_course = await platform.course(anbar)
    anbar_only = platform.token("case_worker", governorates=("IQG01",))
    out_of_scope = await client.post(f"/api/v1/courses/{anbar_course['id']}/enrolments",
                                     json={"beneficiary_id": a}, headers=anbar_only)
    assert assert_problem(out_of_scope, 422)["errors"] == [{"loc": ["body", "beneficiary_id"],
                                                           "msg": "unknown beneficiary"}]
    anbar_person = await platform.person(anbar)
    assert_problem(await client.post(f"/api/v1/courses/{course['id']}/enrolments",
                                     json={"beneficiary_id": anbar_person}, headers=anbar_only), 404)
    assert_problem(await platform.enrol(UNKNOWN, a), 404)
    assert_problem(await client.post(f"/api/v1/courses/{course['id']}/enrolments", json={"beneficiary_id": a,
                                     "extra": 1}, headers=platform.token("case_worker")), 422)
    # lists and reads, scoped
    listed = (await client.get(f"/api/v1/enrolments?course_id={course['id']}&status=enrolled",
                               headers=platform.token("me_officer"))).json()["items"]
    assert {e["beneficiary_id"] for e in listed} == {a, c}
    assert (await client.get("/api/v1/enrolments", headers=anbar_only)).json()["items"] == []
    assert_problem(await client.get(f"/api/v1/enrolments/{first.json()['id']}", headers=anbar_only), 404)
    assert_problem(await client.get(f"/api/v1/enrolments/{UNKNOWN}", headers=platform.token("case_worker")), 404)
    stored = await client.get(f"/api/v1/courses/{course['id']}", headers=platform.token("case_worker"))
    assert stored.json()["enrolled_count"] == 2


async def test_beneficiaries_service_down_is_503_and_nothing_is_stored(platform: Platform) -> None:
    mosul = await platform.community()
    course = await platform.course(mosul)
    person = await platform.person(mosul)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    platform.app.state.http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    try:
        before = (await platform.count(Enrolment), len(await outbox_events(platform)))
        body = assert_problem(await platform.enrol(course["id"], person), 503)
        assert "Traceback" not in json.dumps(body)
        resp = await platform.training.post("/api/v1/courses", headers=platform.token("programme_manager"), json={
            "title": "x", "skill_area": "welding", "community_id": mosul, "start_date": "2026-01-01",
            "end_date": "2026-02-01", "capacity": 3})
        assert_problem(resp, 503)
        assert (await platform.count(Enrolment), len(await outbox_events(platform))) == before
        assert await platform.count(Course) == 1
    finally:
        await platform.app.state.http.aclose()
        platform.app.state.http = platform.peer_client


async def test_attendance_completion_threshold_and_override(platform: Platform) -> None:
    client = platform.training
    mosul = await platform.community()
    course = await platform.course(mosul, planned_sessions=5, completion_threshold=80)
    people = [await platform.person(mosul) for _ in range(3)]
    a, b, w = [(await platform.enrol(course["id"], p)).json()["id"] for p in people]
    # attendance for many trainees in one call; sending it again changes nothing
    for session in (1, 2, 3, 4):
        resp = await platform.attend(course["id"], session, {a: True, b: session <= 3, w: session == 1})
        assert resp.status_code == 200, resp.text
        assert resp.json()["recorded"] == 3
    again = await platform.attend(course["id"], 1, {a: True, b: True, w: True})
    assert [e["sessions_attended"] for e in again.json()["enrolments"]] == [4, 3, 1]
    corrected = await platform.attend(course["id"], 1, {w: False})  # a correction overwrites
    assert corrected.json()["enrolments"][0]["sessions_attended"] == 0
    attended = (await client.get(f"/api/v1/enrolments/{a}/attendance", headers=platform.token("me_officer"))).json()
    assert [r["session"] for r in attended["items"]] == [1, 2, 3, 4]
    # bad input: beyond the plan, another course's enrolment, twice in one call, nothing, before the start
    other = await platform.course(mosul)
    stranger = (await platform.enrol(other["id"], people[0])).json()["id"]
    attendance_url = f"/api/v1/courses/{course['id']}/attendance"
    assert_problem(await platform.attend(course["id"], 6, {a: True}), 422)
    assert_problem(await platform.attend(course["id"], 1, {stranger: True}), 422)
    assert_problem(await client.post(attendance_url, headers=platform.token("case_worker"),
                                     json={"session": 1, "held_on": "2026-01-05", "records": [
                                         {"enrolment_id": a, "present": True}, {"enrolment_id": a, "present": True}]}),
                   422)
    assert_problem(await client.post(attendance_url, headers=platform.token("case_worker"),
                                     json={"session": 1, "held_on": "2026-01-05", "records": []}), 422)
    assert_problem(await client.post(attendance_url, headers=platform.token("case_worker"),
                                     json={"session": 1, "held_on": "2025-12-05", "records": [
                                         {"enrolment_id": a, "present": True}]}), 422)
    assert_problem(await platform.attend(UNKNOWN, 1, {a: True}), 404)
    assert_problem(await client.post(f"/api/v1/courses/{course['id']}/attendance",
                                     headers=platform.token("case_worker", governorates=("IQG01",)),
                                     json={"session": 1, "held_on": "2026-01-05", "records": [
                                         {"enrolment_id": a, "present": True}]}), 404)

    view = (await client.get(f"/api/v1/enrolments/{a}", headers=platform.token("case_worker"))).json()
    assert (view["attendance_percent"], view["meets_threshold"]) == (80, True)
    done = await client.post(f"/api/v1/enrolments/{a}/completion", headers=platform.token("case_worker"),
                             json={"completed_on": "2026-03-01", "certified": True})
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["certified"], done.json()["overridden"]) == ("completed", True, False)
    assert_problem(await client.post(f"/api/v1/enrolments/{a}/completion", headers=platform.token("case_worker"),
                                     json={"completed_on": "2026-03-01"}), 409)  # twice
    assert_problem(await platform.attend(course["id"], 5, {a: True}), 409)  # no longer enrolled
    # 60 %: below the threshold
    below = await client.post(f"/api/v1/enrolments/{b}/completion", headers=platform.token("case_worker"),
                              json={"completed_on": "2026-03-01"})
    below = assert_problem(below, 409)
    assert below["type"].endswith("below-threshold") and below["attendance_percent"] == 60
    assert_problem(await client.post(f"/api/v1/enrolments/{b}/completion", headers=platform.token("case_worker"),
                                     json={"completed_on": "2026-03-01", "override_reason": "sick leave"}), 403)
    for bad in ({"completed_on": "2999-01-01"}, {"completed_on": "2025-01-01"}, {}, {"completed_on": "2026-03-01",
                                                                                     "certified": "maybe"}):
        assert_problem(await client.post(f"/api/v1/enrolments/{b}/completion", headers=platform.token("admin"),
                                         json=bad), 422)
    overridden = await client.post(f"/api/v1/enrolments/{b}/completion", headers=platform.token("programme_manager"),
                                   json={"completed_on": "2026-03-01", "override_reason": "sick leave, certified by"
                                                                                          " the trainer"})
    assert overridden.status_code == 200 and overridden.json()["overridden"] is True
    assert_problem(await client.post(f"/api/v1/enrolments/{UNKNOWN}/completion",
                                     headers=platform.token("programme_manager"), json={"completed_on": "2026-03-01"}),
                   404)
    # certification after the fact, once
    cert = await client.post(f"/api/v1/enrolments/{b}/certification", headers=platform.token("case_worker"),
                             json={"certified_on": "2026-03-05"})
    assert cert.status_code == 200 and cert.json()["certified"] is True
    assert_problem(await client.post(f"/api/v1/enrolments/{b}/certification", headers=platform.token("case_worker"),
                                     json={"certified_on": "2026-03-05"}), 409)
    assert_problem(await client.post(f"/api/v1/enrolments/{w}/certification", headers=platform.token("case_worker"),
                                     json={"certified_on": "2026-03-05"}), 409)
    # a course that does not require attendance
    open_course = await platform.course(mosul, completion_threshold=0)
    free = (await platform.enrol(open_course["id"], people[2])).json()["id"]
    done = await client.post(f"/api/v1/enrolments/{free}/completion", headers=platform.token("partner_system"),
                             json={"completed_on": "2026-03-01"})
    assert done.status_code == 200 and done.json()["status"] == "completed"
    # the events: pseudonymous
    completed = await outbox_events(platform, ".enrolment.completed.v1")
    assert {e["data"]["enrolment_id"] for e in completed} == {a, b, free}
    by_id = {e["data"]["enrolment_id"]: e["data"] for e in completed}
    assert by_id[b]["overridden"] is True and by_id[b]["attendance_percent"] == 60
    text = json.dumps(await outbox_events(platform))
    assert "sick leave" not in text and "Trainee" not in text and "Father" not in text


async def test_waiting_list_moves_up_in_order_on_dropout(platform: Platform) -> None:
    client = platform.training
    mosul = await platform.community()
    course = await platform.course(mosul, capacity=2)
    people = [await platform.person(mosul) for _ in range(4)]
    a, b = [(await platform.enrol(course["id"], p)).json()["id"] for p in people[:2]]
    w1, w2 = [(await platform.enrol(course["id"], p, waitlist=True)).json() for p in people[2:]]
    assert (w1["status"], w1["waitlist_position"], w2["waitlist_position"]) == ("waitlisted", 1, 2)
    for bad in ({"dropped_on": "2026-02-01"}, {"dropped_on": "2026-02-01", "reason": "bored"},
                {"dropped_on": "2999-02-01", "reason": "health"}):
        assert_problem(await client.post(f"/api/v1/enrolments/{a}/dropout", headers=platform.token("case_worker"),
                                         json=bad), 422)
    dropped = await client.post(f"/api/v1/enrolments/{a}/dropout", headers=platform.token("case_worker"),
                                json={"dropped_on": "2026-02-01", "reason": "employment", "note": "found a job"})
    assert dropped.status_code == 200 and dropped.json()["status"] == "dropped"
    assert dropped.json()["drop_reason"] == "employment"
    promoted = (await client.get(f"/api/v1/enrolments/{w1['id']}", headers=platform.token("case_worker"))).json()
    assert (promoted["status"], promoted["waitlist_position"]) == ("enrolled", None)
    second = (await client.get(f"/api/v1/enrolments/{w2['id']}", headers=platform.token("case_worker"))).json()
    assert (second["status"], second["waitlist_position"]) == ("waitlisted", 1)
    assert (await client.get(f"/api/v1/courses/{course['id']}", headers=platform.token("case_worker"))
            ).json()["enrolled_count"] == 2
    # a waitlisted person dropping frees no place
    gone = await client.post(f"/api/v1/enrolments/{w2['id']}/dropout", headers=platform.token("case_worker"),
                             json={"dropped_on": "2026-02-02", "reason": "relocation"})
    assert gone.status_code == 200
    assert_problem(await client.post(f"/api/v1/enrolments/{a}/dropout", headers=platform.token("case_worker"),
                                     json={"dropped_on": "2026-02-01", "reason": "health"}), 409)  # twice
    assert_problem(await client.post(f"/api/v1/enrolments/{UNKNOWN}/dropout", headers=platform.token("case_worker"),
                                     json={"dropped_on": "2026-02-01", "reason": "health"}), 404)
    # b drops: nobody left waiting, the place stays free
    await client.post(f"/api/v1/enrolments/{b}/dropout", headers=platform.token("case_worker"),
                      json={"dropped_on": "2026-02-03", "reason": "family"})
    assert (await client.get(f"/api/v1/courses/{course['id']}", headers=platform.token("case_worker"))
            ).json()["enrolled_count"] == 1
    # the dropped person may enrol again
    assert (await platform.enrol(course["id"], people[0])).status_code == 201
    assert [e["data"]["enrolment_id"] for e in await outbox_events(platform, ".enrolment.promoted.v1")] == [w1["id"]]
    drops = await outbox_events(platform, ".enrolment.dropped.v1")
    assert {e["data"]["reason"] for e in drops} == {"employment", "relocation", "family"}
    assert "found a job" not in json.dumps(drops)


async def _completed(platform: Platform, community: str, course: dict[str, Any], on: str) -> tuple[str, str]:
    person = await platform.person(community)
    enrolment = (await platform.enrol(course["id"], person)).json()["id"]
    resp = await platform.training.post(f"/api/v1/enrolments/{enrolment}/completion",
                                        headers=platform.token("programme_manager"),
                                        json={"completed_on": on, "override_reason": "demo"})
    assert resp.status_code == 200, resp.text
    return person, enrolment


async def test_follow_ups_and_the_list_due(platform: Platform) -> None:
    client = platform.training
    mosul = await platform.community()
    course = await platform.course(mosul)
    _, early = await _completed(platform, mosul, course, "2026-01-31")
    _, late = await _completed(platform, mosul, course, "2026-05-10")
    pending = (await platform.enrol(course["id"], await platform.person(mosul))).json()["id"]
    officer = platform.token("me_officer")
    due = (await client.get("/api/v1/follow-ups/due?on=2026-04-30", headers=officer)).json()["items"]
    assert [(d["enrolment_id"], d["months_after"], d["due_on"]) for d in due] == [(early, 3, "2026-04-30")]
    due = (await client.get("/api/v1/follow-ups/due?on=2026-08-10", headers=officer)).json()["items"]
    assert [(d["enrolment_id"], d["months_after"]) for d in due] == [(early, 3), (early, 6), (late, 3)]
    body = {"months_after": 3, "employment_status": "self_employed", "income_band": "250k_500k",
            "recorded_on": "2026-05-02"}
    recorded = await client.post(f"/api/v1/enrolments/{early}/follow-ups", json=body, headers=officer)
    assert recorded.status_code == 201, recorded.text
    assert_problem(await client.post(f"/api/v1/enrolments/{early}/follow-ups", json=body, headers=officer), 409)
    assert_problem(await client.post(f"/api/v1/enrolments/{pending}/follow-ups", json=body, headers=officer), 409)
    assert_problem(await client.post(f"/api/v1/enrolments/{UNKNOWN}/follow-ups", json=body, headers=officer), 404)
    assert_problem(await client.post(f"/api/v1/enrolments/{early}/follow-ups",
                                     headers=platform.token("me_officer", governorates=("IQG01",)),
                                     json={**body, "months_after": 6}), 404)
    for bad in ({"months_after": 4}, {"employment_status": "retired"}, {"income_band": "lots"},
                {"recorded_on": "2026-01-01"}, {"recorded_on": "2999-01-01"}):
        assert_problem(await client.post(f"/api/v1/enrolments/{late}/follow-ups", json={**body, **bad},
                                         headers=officer), 422)
    due = (await client.get("/api/v1/follow-ups/due?on=2026-08-10", headers=officer)).json()["items"]
    assert [(d["enrolment_id"], d["months_after"]) for d in due] == [(early, 6), (late, 3)]
    assert (await client.get("/api/v1/follow-ups/due?on=2026-08-10",
                             headers=platform.token("case_worker", governorates=("IQG01",)))).json()["items"] == []
    listed = (await client.get(f"/api/v1/enrolments/{early}/follow-ups", headers=officer)).json()
    assert [f["employment_status"] for f in listed] == ["self_employed"]
    assert_problem(await client.get("/api/v1/follow-ups/due?on=yesterday", headers=officer), 422)
    events = await outbox_events(platform, ".follow_up.recorded.v1")
    assert [(e["data"]["enrolment_id"], e["data"]["employment_status"]) for e in events] == [(early, "self_employed")]


async def test_market_assessments_and_matching(platform: Platform) -> None:
    client = platform.training
    analyst = platform.token("me_officer")
    mosul, anbar = await platform.community(), await platform.community("IQG01Q03")
    tailoring = await platform.course(mosul)
    welding = await platform.course(mosul, skill_area="welding")
    tailor, tailor_enrolment = await _completed(platform, mosul, tailoring, "2026-03-01")
    welder, _ = await _completed(platform, mosul, welding, "2026-03-01")
    anbar_tailor, _ = await _completed(platform, anbar, tailoring, "2026-03-01")  # lives in Anbar
    not_done = (await platform.enrol(tailoring["id"], await platform.person(mosul))).json()["id"]

    assessment = await client.post("/api/v1/market-assessments", headers=analyst, json={
        "title": "Mosul labour market 2026", "governorate_pcode": "IQG15", "conducted_on": "2026-02-01"})
    assert assessment.status_code == 201, assessment.text
    for bad in ({"governorate_pcode": "Ninewa"}, {"conducted_on": "2999-01-01"}, {"title": ""}):
        assert_problem(await client.post("/api/v1/market-assessments", headers=analyst, json={
            "title": "x", "governorate_pcode": "IQG15", "conducted_on": "2026-02-01", **bad}), 422)
    assert_problem(await client.post("/api/v1/market-assessments",
                                     headers=platform.token("me_officer", governorates=("IQG01",)),
                                     json={"title": "x", "governorate_pcode": "IQG15", "conducted_on": "2026-02-01"}),
                   422)
    opportunity_body = {"market_assessment_id": assessment.json()["id"], "employer": "Nineveh Garments",
                        "sector": "garments", "skill_area": "tailoring", "openings": 12,
                        "period_start": "2026-03-01", "period_end": "2026-12-31"}
    opportunity = await client.post("/api/v1/job-opportunities", headers=analyst, json=opportunity_body)
    assert opportunity.status_code == 201, opportunity.text
    assert opportunity.json()["governorate_pcode"] == "IQG15"
    for bad in ({"market_assessment_id": UNKNOWN}, {"openings": 0}, {"period_end": "2026-01-01"},
                {"skill_area": "Tailoring!"}):
        assert_problem(await client.post("/api/v1/job-opportunities", headers=analyst,
                                         json={**opportunity_body, **bad}), 422)
    opportunity_id = opportunity.json()["id"]
    matches = (await client.get(f"/api/v1/job-opportunities/{opportunity_id}/trainees",
                                headers=platform.token("case_worker"))).json()["items"]
    assert [m["beneficiary_id"] for m in matches] == [tailor]  # not the welder, not the tailor living in Anbar
    assert tailor_enrolment in {m["enrolment_id"] for m in matches} and welder != anbar_tailor
    fits = (await client.get(f"/api/v1/enrolments/{tailor_enrolment}/opportunities?on=2026-06-01",
                             headers=platform.token("case_worker"))).json()["items"]
    assert [o["id"] for o in fits] == [opportunity_id]
    assert (await client.get(f"/api/v1/enrolments/{tailor_enrolment}/opportunities?on=2027-06-01",
                             headers=platform.token("case_worker"))).json()["items"] == []  # the period ended
    assert_problem(await client.get(f"/api/v1/enrolments/{not_done}/opportunities",
                                    headers=platform.token("case_worker")), 409)
    anbar_only = platform.token("case_worker", governorates=("IQG01",))
    assert_problem(await client.get(f"/api/v1/job-opportunities/{opportunity_id}/trainees", headers=anbar_only), 404)
    assert_problem(await client.get(f"/api/v1/job-opportunities/{opportunity_id}", headers=anbar_only), 404)
    assert_problem(await client.get(f"/api/v1/market-assessments/{assessment.json()['id']}", headers=anbar_only), 404)
    assert_problem(await client.get(f"/api/v1/job-opportunities/{UNKNOWN}/trainees", headers=analyst), 404)
    assert (await client.get("/api/v1/job-opportunities", headers=anbar_only)).json()["items"] == []
    listed = (await client.get("/api/v1/job-opportunities?skill_area=tailoring&governorate=IQG15&open_on=2026-06-01",
                               headers=analyst)).json()["items"]
    assert [o["id"] for o in listed] == [opportunity_id]
    assert len((await client.get("/api/v1/market-assessments?governorate=IQG15", headers=analyst)).json()["items"]) == 1


async def test_idempotent_enrolment_and_attendance(platform: Platform) -> None:
    client = platform.training
    mosul = await platform.community()
    course = await platform.course(mosul, capacity=1)
    person = await platform.person(mosul)
    headers = {**platform.token("case_worker"), "Idempotency-Key": "enrol-1"}
    first = await client.post(f"/api/v1/courses/{course['id']}/enrolments", json={"beneficiary_id": person},
                              headers=headers)
    replay = await client.post(f"/api/v1/courses/{course['id']}/enrolments", json={"beneficiary_id": person},
                               headers=headers)
    assert (first.status_code, replay.status_code) == (201, 201) and first.json() == replay.json()
    assert replay.headers["idempotency-replayed"] == "true"
    assert len(await outbox_events(platform, ".enrolment.created.v1")) == 1
    payload = {"session": 1, "held_on": "2026-01-05", "records": [{"enrolment_id": first.json()["id"],
                                                                    "present": True}]}
    key = {**platform.token("case_worker"), "Idempotency-Key": "attend-1"}
    one = await client.post(f"/api/v1/courses/{course['id']}/attendance", json=payload, headers=key)
    two = await client.post(f"/api/v1/courses/{course['id']}/attendance", json=payload, headers=key)
    assert one.json() == two.json() and one.json()["enrolments"][0]["sessions_attended"] == 1


async def test_course_reads_take_no_lock_and_see_only_committed_rows(platform: Platform) -> None:
    """The GET by id and the list of courses read without a session (shared.db.Reads): while another connection
    holds the write lock with an uncommitted change, they answer at once, with the committed values."""
    from tests.locks import answers_as_committed_while_locked

    course = await platform.course(await platform.community())
    paths = (f"/api/v1/courses/{course['id']}", "/api/v1/courses")
    during = await answers_as_committed_while_locked(
        platform.training, platform.app, platform.env.backend, "courses", course["id"],
        dict.fromkeys(paths, platform.token("case_worker")), title="Uncommitted")
    assert during[paths[0]].json() == course and during[paths[0]].headers["etag"]
    assert during[paths[1]].json()["items"] == [course]
