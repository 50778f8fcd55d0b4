"""The infrastructure service over HTTP: per endpoint no token, wrong role, out of scope, not found, bad input,
valid; the priority-or-justification rule, catchment validation, every allowed and refused transition, progress
history, portal filters, GeoJSON validity, and the beneficiaries service down."""

from __future__ import annotations

import itertools
import json
from typing import Any

import geojson
import httpx
import pytest
from sqlalchemy import select

from services.infrastructure.models import CommunityAssessment, InfrastructureProject
from services.infrastructure.service import TRANSITIONS
from shared.audit import AuditEntry
from tests.beneficiaries.test_api import assert_problem
from tests.infrastructure.conftest import ASSESSMENT, Platform

UNKNOWN = "00000000-0000-4000-8000-000000000000"
PROJECTS = "/api/v1/infrastructure-projects"
ASSESSMENTS = "/api/v1/community-assessments"
STATUSES = ("planned", "in_progress", "completed", "handed_over", "cancelled")
# The free text that must never leave the service in an event.
PRIVATE_TEXT = ("Al-Mosul municipality", "volunteer days", "Returnees say", "shared market", "Mixed crews",
                "Hiring only", "West network", "Tigris Builders", "Governorate water directorate", "flooded site",
                "emergency repair", "36.341717", "43.131171")  # long: a timestamp may hold "43.13"


async def test_no_token_and_wrong_role_on_every_endpoint(platform: Platform) -> None:
    client, some = platform.infrastructure, UNKNOWN
    endpoints = [
        ("POST", ASSESSMENTS, "me_officer"),
        ("GET", ASSESSMENTS, "cfm_officer"),
        ("GET", f"{ASSESSMENTS}/{some}", "psea_focal_point"),
        ("POST", f"{ASSESSMENTS}/{some}/completion", "case_worker"),
        ("POST", PROJECTS, "case_worker"),
        ("GET", PROJECTS, "cfm_officer"),
        ("GET", f"{PROJECTS}/geojson", "cfm_officer"),
        ("GET", f"{PROJECTS}/{some}", "psea_focal_point"),
        ("POST", f"{PROJECTS}/{some}/status", "partner_system"),
        ("POST", f"{PROJECTS}/{some}/progress", "case_worker"),
        ("GET", f"{PROJECTS}/{some}/progress", "cfm_officer"),
    ]
    for method, path, wrong_role in endpoints:
        body = {} if method == "POST" else None
        assert_problem(await client.request(method, path, json=body), 401)
        assert_problem(await client.request(method, path, json=body, headers=platform.token(wrong_role)), 403)
    operations = {op["operationId"] for path, item in platform.app.openapi()["paths"].items()
                  if path.startswith("/api/") for op in item.values()}
    assert len(operations) == len(endpoints)


async def test_assessments_create_validate_scope_complete_and_list(platform: Platform) -> None:
    client, manager = platform.infrastructure, platform.token("programme_manager")
    mosul = await platform.community()
    draft = await platform.assessment(mosul, complete=False)
    assert (draft["status"], draft["governorate_pcode"], draft["district_pcode"]) == ("draft", "IQG15", "IQG15Q05")
    assert [(p["rank"], p["sector"]) for p in draft["priorities"]] == [(1, "water"), (2, "education"), (3, "roads")]
    assert draft["participants"] == {"female": 14, "male": 17, "idp": 9, "returnee": 12, "host_community": 10}
    assert [r["description"] for r in draft["conflict_sensitivity"]["risks"]] == [
        "Hiring only from one group for the works", "Water reaching one neighbourhood first"]
    assert all(r["id"] for r in draft["conflict_sensitivity"]["risks"])
    bad_inputs = (
        {"participants": {"female": 1, "male": 1, "idp": 3}},  # the groups exceed the participants
        {"participants": {"female": 0, "male": 0}}, {"participants": {"female": -1, "male": 5}},
        {"priorities": []}, {"priorities": [{"sector": "bridges", "need": "x"}]}, {"assessed_on": "2999-01-01"},
        {"contributions": [{"kind": "goodwill", "description": "x"}]}, {"unknown": 1},
        {"local_authority": "bad\x00name"}, {"conflict_sensitivity": {"risks": [{"description": ""}]}},
    )
    for bad in bad_inputs:
        assert_problem(await client.post(ASSESSMENTS, json={**ASSESSMENT, "community_id": mosul, **bad},
                                         headers=manager), 422)
    for community in (UNKNOWN, "../../healthz"):
        body = assert_problem(await client.post(ASSESSMENTS, json={**ASSESSMENT, "community_id": community},
                                                headers=manager), 422)
        assert body["errors"] == [{"loc": ["body", "community_id"], "msg": "unknown community"}]
    anbar_only = platform.token("programme_manager", governorates=("IQG01",))
    assert_problem(await client.post(ASSESSMENTS, json={**ASSESSMENT, "community_id": mosul}, headers=anbar_only),
                   422)  # a community outside the caller's governorates is unknown to them
    # reading: the conflict-sensitivity part only for programme managers, M&E officers and admins
    for role, sees in (("me_officer", True), ("admin", True), ("viewer", False), ("case_worker", False),
                       ("partner_system", False)):
        got = await client.get(f"{ASSESSMENTS}/{draft['id']}", headers=platform.token(role))
        assert got.status_code == 200 and got.headers["etag"], got.text
        assert (got.json()["conflict_sensitivity"] is not None) is sees, role
    assert_problem(await client.get(f"{ASSESSMENTS}/{draft['id']}", headers=anbar_only), 404)
    assert_problem(await client.get(f"{ASSESSMENTS}/{UNKNOWN}", headers=manager), 404)
    # completion: once, not before it was held, in scope
    completion = f"{ASSESSMENTS}/{draft['id']}/completion"
    for bad in ({"completed_on": "2026-09-01"}, {"completed_on": "2999-01-01"}, {}):
        assert_problem(await client.post(completion, json=bad, headers=manager), 422)
    assert_problem(await client.post(completion, json={"completed_on": "2026-09-12"}, headers=anbar_only), 404)
    assert_problem(await client.post(f"{ASSESSMENTS}/{UNKNOWN}/completion", json={"completed_on": "2026-09-12"},
                                     headers=manager), 404)
    done = await client.post(completion, json={"completed_on": "2026-09-12"}, headers=manager)
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    assert done.json()["completed_on"] == "2026-09-12"
    again = assert_problem(await client.post(completion, json={"completed_on": "2026-09-13"}, headers=manager), 409)
    assert again["type"].endswith("invalid-transition")
    # lists: filters and scope
    other = await platform.assessment(await platform.community("IQG01Q03"), complete=False, assessed_on="2026-05-01")
    listed = (await client.get(f"{ASSESSMENTS}?status=completed", headers=manager)).json()["items"]
    assert [a["id"] for a in listed] == [draft["id"]]
    assert [a["id"] for a in (await client.get(f"{ASSESSMENTS}?governorate=IQG01", headers=manager)
                              ).json()["items"]] == [other["id"]]
    assert [a["id"] for a in (await client.get(f"{ASSESSMENTS}?assessed_to=2026-06-01", headers=manager)
                              ).json()["items"]] == [other["id"]]
    assert [a["id"] for a in (await client.get(f"{ASSESSMENTS}?community_id={mosul}&assessed_from=2026-09-01",
                                               headers=manager)).json()["items"]] == [draft["id"]]
    assert [a["id"] for a in (await client.get(ASSESSMENTS, headers=anbar_only)).json()["items"]] == [other["id"]]
    assert (await client.get(ASSESSMENTS, headers=platform.token("viewer"))).json()["items"][0][
        "conflict_sensitivity"] is None
    assert_problem(await client.get(f"{ASSESSMENTS}?status=archived", headers=manager), 422)
    # the event: counts and sectors, no text
    events = await platform.events(".community_assessment.completed.v1")
    assert len(events) == 1
    data = events[0]["data"]
    assert data["priority_sectors"] == ["water", "education", "roads"]
    assert (data["participants_female"], data["participants_male"], data["risks_identified"]) == (14, 17, 2)
    assert data["local_authority_participated"] is True and data["governorate_pcode"] == "IQG15"
    text = json.dumps(events)
    for private in PRIVATE_TEXT:
        assert private not in text, private


async def test_a_project_answers_an_assessed_priority_or_is_justified(platform: Platform) -> None:
    client, manager = platform.infrastructure, platform.token("programme_manager")
    mosul, sinjar = await platform.community(), await platform.community("IQG15Q07")
    assessment = await platform.assessment(mosul)
    water = assessment["priorities"][0]["id"]
    risks = [r["id"] for r in assessment["conflict_sensitivity"]["risks"]]
    answered = await platform.project(mosul, water, risks_to_mitigate=risks, budget="120000.00", currency="USD",
                                      contractor="Tigris Builders", planned_start="2026-10-01",
                                      planned_end="2027-02-01", community_contribution="volunteer days")
    assert (answered["status"], answered["assessment_id"], answered["priority_rank"]) == ("planned",
                                                                                        assessment["id"], 1)
    assert answered["risks_to_mitigate"] == risks and answered["justification"] is None
    justified = await platform.project(mosul, None, sector="health")
    assert justified["assessment_priority_id"] is None and justified["justification"]
    base = {"title": "Clinic", "sector": "health", "community_id": mosul, "catchment_population": 100}
    refused = assert_problem(await client.post(PROJECTS, json=base, headers=manager), 422)
    assert refused["errors"] == [{"loc": ["body", "justification"], "msg": "a project that answers no assessed "
                                  "priority of its community needs a justification"}]
    draft = await platform.assessment(mosul, complete=False)
    elsewhere = await platform.assessment(sinjar)
    for priority, msg in ((draft["priorities"][0]["id"], "the assessment is not completed yet"),
                          (elsewhere["priorities"][0]["id"], "not a priority of an assessment of this community"),
                          (UNKNOWN, "not a priority of an assessment of this community")):
        body = assert_problem(await client.post(PROJECTS, json={**base, "assessment_priority_id": priority},
                                                headers=manager), 422)
        assert body["errors"] == [{"loc": ["body", "assessment_priority_id"], "msg": msg}]
    mismatch = assert_problem(await client.post(PROJECTS, json={**base, "assessment_priority_id": water},
                                                headers=manager), 422)  # a health project for a water need
    assert mismatch["errors"] == [{"loc": ["body", "sector"], "msg": "the answered priority is a water need"}]
    unknown_risk = assert_problem(await client.post(PROJECTS, json={
        **base, "sector": "water", "assessment_priority_id": water, "risks_to_mitigate": [risks[0], UNKNOWN]},
        headers=manager), 422)
    assert unknown_risk["errors"] == [{"loc": ["body", "risks_to_mitigate", 1],
                                       "msg": "not a risk of the answered assessment"}]
    assert_problem(await client.post(PROJECTS, json={**base, "justification": "why", "risks_to_mitigate": risks},
                                     headers=manager), 422)
    assert_problem(await client.post(PROJECTS, json={**base, "justification": "   "}, headers=manager), 422)
    # unknown or out-of-scope community
    for community in (UNKNOWN, "x" * 65):
        assert_problem(await client.post(PROJECTS, json={**base, "community_id": community, "justification": "x"},
                                         headers=manager), 422)
    assert_problem(await client.post(PROJECTS, json={**base, "justification": "x"},
                                     headers=platform.token("programme_manager", governorates=("IQG01",))), 422)
    assert await platform.count(InfrastructureProject) == 2
    created = [e["data"] for e in await platform.events(".project.created.v1")]
    assert [(e["answers_priority"], e["priority_rank"], e["risks_to_mitigate"]) for e in created] == [
        (True, 1, 2), (False, None, 0)]
    text = json.dumps(await platform.events())
    for private in PRIVATE_TEXT:
        assert private not in text, private


async def test_catchment_and_other_input_validation(platform: Platform) -> None:
    client, manager = platform.infrastructure, platform.token("programme_manager")
    mosul = await platform.community()
    base = {"title": "School roof", "sector": "education", "community_id": mosul, "catchment_population": 500,
            "justification": "Requested by the directorate of education"}
    bad_inputs = (
        {"catchment_population": -1}, {"catchment": {"female": -1}}, {"catchment": {"idp": -5}},
        {"catchment": {"female": 300, "male": 201}},  # the sexes exceed the total
        {"catchment": {"idp": 200, "returnee": 200, "host_community": 101}},  # the groups exceed the total
        {"catchment": {"children": 3}}, {"catchment_population": "many"}, {"catchment_population": 1.5},
        {"latitude": 91, "longitude": 43}, {"latitude": 36, "longitude": 181}, {"latitude": -90.5, "longitude": 0},
        {"latitude": 36.3}, {"budget": "1000.00"}, {"budget": "-1", "currency": "USD"},
        {"budget": "10", "currency": "EUR"}, {"planned_start": "2026-10-01", "planned_end": "2026-09-01"},
        {"sector": "bridges"}, {"title": ""}, {"extra": True}, {"title": "a\x00b"},
    )
    for bad in bad_inputs:
        assert_problem(await client.post(PROJECTS, json={**base, **bad}, headers=manager), 422)
    base = {k: v for k, v in base.items() if k != "community_id"}
    full = await platform.project(mosul, None, **{**base, "catchment": {"female": 260, "male": 240, "idp": 100,
                                                                        "returnee": 150, "host_community": 250}})
    assert full["catchment"] == {"female": 260, "male": 240, "idp": 100, "returnee": 150, "host_community": 250}
    partial = await platform.project(mosul, None, **{**base, "catchment": {"female": 10}, "latitude": -90,
                                                     "longitude": 180})
    assert partial["catchment"]["female"] == 10 and partial["catchment"]["male"] is None
    none = await platform.project(mosul, None, **{**base, "catchment_population": 0})
    assert none["catchment"] is None and none["catchment_population"] == 0
    got = await client.get(f"{PROJECTS}/{full['id']}", headers=platform.token("viewer"))
    assert got.status_code == 200 and got.headers["etag"] and got.json()["catchment"] == full["catchment"]
    assert_problem(await client.get(f"{PROJECTS}/{full['id']}",
                                    headers=platform.token("viewer", governorates=("IQG01",))), 404)
    assert_problem(await client.get(f"{PROJECTS}/{UNKNOWN}", headers=platform.token("viewer")), 404)


async def _project_in(platform: Platform, status: str, community: str) -> str:
    """A project brought to ``status`` along the allowed path."""
    project = (await platform.project(community, None))["id"]
    path = {"planned": [], "in_progress": ["in_progress"], "completed": ["in_progress", "completed"],
            "handed_over": ["in_progress", "completed", "handed_over"], "cancelled": ["cancelled"]}[status]
    for step in path:
        resp = await platform.status(project, step, reason="no funds", authority="Directorate of water")
        assert resp.status_code == 200, resp.text
    return project


async def test_every_allowed_and_refused_transition(platform: Platform) -> None:
    mosul = await platform.community()
    for current, target in itertools.product(STATUSES, STATUSES):
        project = await _project_in(platform, current, mosul)
        resp = await platform.status(project, target, reason="the site was flooded",
                                     authority="Governorate water directorate")
        if target in TRANSITIONS[current]:
            assert resp.status_code == 200, (current, target, resp.text)
            assert resp.json()["status"] == target
        else:
            body = assert_problem(resp, 409)
            assert body["type"].endswith("invalid-transition"), (current, target)
            assert (await platform.infrastructure.get(f"{PROJECTS}/{project}", headers=platform.token("viewer"))
                    ).json()["status"] == current
    allowed = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert allowed == {("planned", "in_progress"), ("planned", "cancelled"), ("in_progress", "completed"),
                       ("in_progress", "cancelled"), ("completed", "handed_over")}


async def test_lifecycle_dates_handover_cancellation_and_events(platform: Platform) -> None:
    client = platform.infrastructure
    mosul = await platform.community()
    assessment = await platform.assessment(mosul)
    project = (await platform.project(mosul, assessment["priorities"][0]["id"],
                                      catchment={"female": 600, "male": 600, "idp": 300})
               )["id"]
    assert_problem(await platform.status(project, "in_progress", role="case_worker"), 403)
    assert_problem(await client.post(f"{PROJECTS}/{project}/status", json={"status": "in_progress",
                                                                          "on": "2026-10-01"},
                                     headers=platform.token("programme_manager", governorates=("IQG01",))), 404)
    assert_problem(await platform.status(UNKNOWN, "in_progress"), 404)
    for bad in ({"status": "started", "on": "2026-10-01"}, {"status": "in_progress"},
                {"status": "in_progress", "on": "2999-01-01"}, {"status": "in_progress", "on": "soon"},
                {"status": "in_progress", "on": "2026-10-01", "extra": 1}):
        assert_problem(await client.post(f"{PROJECTS}/{project}/status", json=bad,
                                         headers=platform.token("programme_manager")), 422)
    started = await platform.status(project, "in_progress", on="2026-10-01")
    assert started.json()["started_on"] == "2026-10-01"
    assert_problem(await platform.status(project, "completed", on="2026-09-30"), 422)  # before the start
    done = await platform.status(project, "completed", on="2026-11-20")
    assert (done.json()["status"], done.json()["completed_on"], done.json()["progress_percent"]) == (
        "completed", "2026-11-20", 100)
    no_authority = assert_problem(await platform.status(project, "handed_over", on="2026-11-25"), 422)
    assert no_authority["errors"][0]["loc"] == ["body", "authority"]
    handed = await platform.status(project, "handed_over", on="2026-11-25", authority="Governorate water directorate")
    assert (handed.json()["status"], handed.json()["handed_over_on"], handed.json()["handover_authority"]) == (
        "handed_over", "2026-11-25", "Governorate water directorate")
    # cancellation needs a reason
    other = (await platform.project(mosul, None))["id"]
    no_reason = assert_problem(await platform.status(other, "cancelled"), 422)
    assert no_reason["errors"][0]["loc"] == ["body", "reason"]
    cancelled = await platform.status(other, "cancelled", reason="the flooded site cannot be reached")
    assert (cancelled.json()["cancelled_on"], cancelled.json()["cancellation_reason"]) == (
        "2026-10-01", "the flooded site cannot be reached")
    # events: one per transition, full snapshots, the catchment with the completion, no free text
    changes = [e["data"] for e in await platform.events(".project.status_changed.v1") if
               e["data"]["project_id"] == project]
    assert [(c["previous_status"], c["status"]) for c in changes] == [("planned", "in_progress"),
                                                                      ("in_progress", "completed")]
    completed = changes[1]
    assert (completed["catchment_population"], completed["catchment_female"], completed["catchment_idp"],
            completed["completed_on"], completed["sector"], completed["community_id"],
            completed["governorate_pcode"]) == (1200, 600, 300, "2026-11-20", "water", mosul, "IQG15")
    assert completed["revision"] > changes[0]["revision"]
    handover = (await platform.events(".project.handed_over.v1"))[0]["data"]
    assert (handover["status"], handover["completed_on"], handover["handed_over_on"],
            handover["catchment_population"]) == ("handed_over", "2026-11-20", "2026-11-25", 1200)
    text = json.dumps(await platform.events())
    for private in PRIVATE_TEXT:
        assert private not in text, private
    # audited: who did what, field names only
    async with platform.app.state.sessionmaker() as session:
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.entity_id == project)
                                         .order_by(AuditEntry.id))).scalars().all()  # type: ignore[arg-type]
    assert [e.action for e in entries] == ["created", "in_progress", "completed", "handed_over"]
    assert json.loads(entries[-1].fields) == ["authority", "on", "status"] and entries[-1].actor == "tester"
    assert "Governorate water directorate" not in json.dumps([e.fields for e in entries])


async def test_a_transition_replayed_with_its_idempotency_key_happens_once(platform: Platform) -> None:
    mosul = await platform.community()
    project = await _project_in(platform, "in_progress", mosul)
    headers = {**platform.token("programme_manager"), "Idempotency-Key": "complete-1"}
    body = {"status": "completed", "on": "2026-11-01"}
    first = await platform.infrastructure.post(f"{PROJECTS}/{project}/status", json=body, headers=headers)
    replay = await platform.infrastructure.post(f"{PROJECTS}/{project}/status", json=body, headers=headers)
    assert (first.status_code, replay.status_code) == (200, 200) and first.json() == replay.json()
    assert replay.headers["idempotency-replayed"] == "true"
    assert len([e for e in await platform.events(".project.status_changed.v1")
                if e["data"]["status"] == "completed"]) == 1


async def test_progress_updates_are_kept_as_history(platform: Platform) -> None:
    client = platform.infrastructure
    mosul = await platform.community()
    project = (await platform.project(mosul, None))["id"]
    url = f"{PROJECTS}/{project}/progress"
    body = {"percent": 20, "reported_on": "2026-10-10", "note": "Trenches dug on the flooded site"}
    assert_problem(await client.post(url, json=body, headers=platform.token("me_officer")), 409)  # still planned
    await platform.status(project, "in_progress", on="2026-10-01")
    for role, percent, day in (("me_officer", 20, "2026-10-10"), ("partner_system", 55, "2026-10-30"),
                               ("programme_manager", 40, "2026-10-20")):  # the last one reported late
        resp = await client.post(url, json={**body, "percent": percent, "reported_on": day},
                                 headers=platform.token(role))
        assert resp.status_code == 201, resp.text
        assert resp.json()["percent"] == percent
    history = (await client.get(url, headers=platform.token("viewer"))).json()
    assert [(h["percent"], h["reported_on"]) for h in history] == [(20, "2026-10-10"), (40, "2026-10-20"),
                                                                   (55, "2026-10-30")]
    shown = (await client.get(f"{PROJECTS}/{project}", headers=platform.token("viewer"))).json()
    assert shown["progress_percent"] == 55  # the latest reported, not the latest recorded
    for bad in ({"percent": 101}, {"percent": -1}, {"reported_on": "2026-09-01"}, {"reported_on": "2999-01-01"},
                {"note": ""}, {"percent": None}):
        assert_problem(await client.post(url, json={**body, **bad}, headers=platform.token("me_officer")), 422)
    assert_problem(await client.post(url, json=body, headers=platform.token("case_worker")), 403)
    assert_problem(await client.post(url, json=body, headers=platform.token("me_officer", governorates=("IQG01",))),
                   404)
    assert_problem(await client.get(url, headers=platform.token("viewer", governorates=("IQG01",))), 404)
    assert_problem(await client.post(f"{PROJECTS}/{UNKNOWN}/progress", json=body,
                                     headers=platform.token("me_officer")), 404)
    assert_problem(await client.get(f"{PROJECTS}/{UNKNOWN}/progress", headers=platform.token("viewer")), 404)
    await platform.status(project, "completed", on="2026-11-01")
    assert_problem(await client.post(url, json=body, headers=platform.token("me_officer")), 409)  # finished
    events = [e["data"] for e in await platform.events(".project.progress_recorded.v1")]
    assert [e["progress_percent"] for e in events] == [20, 55, 55]
    assert "Trenches" not in json.dumps(events)


async def test_lists_filter_like_the_portal_and_respect_scope(platform: Platform) -> None:
    client, viewer = platform.infrastructure, platform.token("viewer")
    mosul, sinjar, ramadi = (await platform.community(), await platform.community("IQG15Q07"),
                             await platform.community("IQG01Q03"))
    water = await _project_in(platform, "completed", mosul)
    school = (await platform.project(sinjar, None, sector="education"))["id"]
    road = (await platform.project(ramadi, None, sector="roads"))["id"]
    await platform.status(road, "in_progress", on="2026-08-01")

    async def ids(query: str, headers: dict[str, str] = viewer) -> set[str]:
        resp = await client.get(f"{PROJECTS}?{query}", headers=headers)
        assert resp.status_code == 200, resp.text
        return {p["id"] for p in resp.json()["items"]}

    assert await ids("") == {water, school, road}
    assert await ids("sector=education") == {school}
    assert await ids("status=completed") == {water}
    assert await ids(f"community_id={ramadi}") == {road}
    assert await ids("governorate=IQG15") == {water, school}
    assert await ids("district=IQG15Q07") == {school}
    assert await ids("started_from=2026-09-01") == {water}
    assert await ids("started_to=2026-09-01") == {road}
    assert await ids("completed_from=2026-10-01&completed_to=2026-10-31") == {water}
    assert await ids("", platform.token("case_worker", governorates=("IQG01",))) == {road}
    assert await ids("governorate=IQG15", platform.token("case_worker", governorates=("IQG01",))) == set()
    page = await client.get(f"{PROJECTS}?limit=2", headers=viewer)
    assert len(page.json()["items"]) == 2 and page.json()["next_cursor"] and 'rel="next"' in page.headers["link"]
    for bad in ("sector=bridges", "status=done", "started_from=yesterday", "limit=0"):
        assert_problem(await client.get(f"{PROJECTS}?{bad}", headers=viewer), 422)
    assert await platform.count(CommunityAssessment) == 0


def _assert_rfc7946_feature_collection(doc: dict[str, Any]) -> None:
    """The parts of RFC 7946 a map client relies on: a FeatureCollection of Features, each with a Point geometry
    whose position is [longitude, latitude] in range, a string or number id, and an object of properties."""
    parsed = geojson.loads(json.dumps(doc))  # an independent reading of RFC 7946
    assert isinstance(parsed, geojson.FeatureCollection) and parsed.is_valid, parsed.errors()
    assert set(doc) == {"type", "features"} and doc["type"] == "FeatureCollection"
    assert isinstance(doc["features"], list)
    for feature in doc["features"]:
        assert feature["type"] == "Feature" and set(feature) == {"type", "id", "geometry", "properties"}
        assert isinstance(feature["id"], str | int) and isinstance(feature["properties"], dict)
        geometry = feature["geometry"]
        assert set(geometry) == {"type", "coordinates"} and geometry["type"] == "Point"
        position = geometry["coordinates"]
        assert isinstance(position, list) and len(position) == 2
        lon, lat = position
        assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in position)
        assert -180 <= lon <= 180 and -90 <= lat <= 90


def test_the_geojson_check_refuses_invalid_documents() -> None:
    """The validity check above can fail: a short position, a latitude out of range, a missing id, a Polygon."""
    good = {"type": "Feature", "id": "p", "geometry": {"type": "Point", "coordinates": [43.13, 36.34]},
            "properties": {}}
    _assert_rfc7946_feature_collection({"type": "FeatureCollection", "features": [good]})
    for bad in ({**good, "geometry": {"type": "Point", "coordinates": [43.13]}},
                {**good, "geometry": {"type": "Point", "coordinates": [43.13, 136.34]}},
                {k: v for k, v in good.items() if k != "id"},
                {**good, "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 1], [0, 0]]]}}):
        with pytest.raises(AssertionError):
            _assert_rfc7946_feature_collection({"type": "FeatureCollection", "features": [bad]})


async def test_geojson_feature_collection_for_map_views(platform: Platform) -> None:
    client, viewer = platform.infrastructure, platform.token("viewer")
    mosul, ramadi = await platform.community(), await platform.community("IQG01Q03")
    # Mosul is at about 36.34 N, 43.13 E: latitude and longitude differ, so the order is checked
    water = await platform.project(mosul, None, latitude=36.34, longitude=43.13)
    road = await platform.project(ramadi, None, sector="roads", latitude=33.42, longitude=43.30)
    edge = await platform.project(ramadi, None, sector="roads", latitude=-90, longitude=-180)
    unlocated = await platform.project(mosul, None, latitude=None, longitude=None)
    resp = await client.get(f"{PROJECTS}/geojson", headers=viewer)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/geo+json")
    doc = resp.json()
    _assert_rfc7946_feature_collection(doc)
    features = {f["id"]: f for f in doc["features"]}
    assert set(features) == {water["id"], road["id"], edge["id"]}  # the unlocated one is not on the map
    assert unlocated["id"] not in features
    assert features[water["id"]]["geometry"]["coordinates"] == [43.13, 36.34]  # [lon, lat]
    assert features[edge["id"]]["geometry"]["coordinates"] == [-180, -90]
    props = features[water["id"]]["properties"]
    assert (props["sector"], props["status"], props["catchment_population"], props["governorate_pcode"],
            props["title"]) == ("water", "planned", 1200, "IQG15", "West network rehabilitation")
    # the same filters as the list, and the caller's scope
    roads = (await client.get(f"{PROJECTS}/geojson?sector=roads&limit=1", headers=viewer)).json()
    _assert_rfc7946_feature_collection(roads)
    assert [f["id"] for f in roads["features"]] == [edge["id"]]  # newest first, one
    scoped = (await client.get(f"{PROJECTS}/geojson", headers=platform.token("viewer", governorates=("IQG15",))
                               )).json()
    assert [f["id"] for f in scoped["features"]] == [water["id"]]
    empty = (await client.get(f"{PROJECTS}/geojson?status=completed", headers=viewer)).json()
    assert empty == {"type": "FeatureCollection", "features": []}
    for bad in ("limit=0", "limit=5001", "sector=bridges"):
        assert_problem(await client.get(f"{PROJECTS}/geojson?{bad}", headers=viewer), 422)


async def test_beneficiaries_service_down_is_503_and_nothing_is_stored(platform: Platform) -> None:
    mosul = await platform.community()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    platform.app.state.http = httpx.AsyncClient(transport=httpx.MockTransport(refuse))
    try:
        manager = platform.token("programme_manager")
        assert_problem(await platform.infrastructure.post(ASSESSMENTS, json={**ASSESSMENT, "community_id": mosul},
                                                          headers=manager), 503)
        assert_problem(await platform.infrastructure.post(PROJECTS, headers=manager, json={
            "title": "x", "sector": "water", "community_id": mosul, "catchment_population": 5,
            "justification": "x"}), 503)
        assert (await platform.count(InfrastructureProject), await platform.count(CommunityAssessment)) == (0, 0)
        assert await platform.events() == []
    finally:
        await platform.app.state.http.aclose()
        platform.app.state.http = platform.peer_client


async def test_project_reads_take_no_lock_and_see_only_committed_rows(platform: Platform) -> None:
    """The GET by id and the list of projects read without a session (shared.db.Reads): while another connection
    holds the write lock with an uncommitted change, they answer at once, with the committed values."""
    from tests.locks import answers_as_committed_while_locked

    project = await platform.project(await platform.community(), None, latitude=36.34, longitude=43.13)
    paths = (f"{PROJECTS}/{project['id']}", PROJECTS)
    during = await answers_as_committed_while_locked(
        platform.infrastructure, platform.app, platform.env.backend, "projects", project["id"],
        dict.fromkeys(paths, platform.token("viewer")), title="Uncommitted")
    assert during[paths[0]].json() == project and during[paths[0]].headers["etag"]
    assert during[paths[1]].json()["items"] == [project]
