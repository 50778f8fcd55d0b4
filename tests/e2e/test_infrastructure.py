"""End to end through the gateway (`crp dev`, real processes): a community assessment, a project answering its first
priority, its lifecycle to completion and handover; the completed event on the stream carries the catchment and no
personal data or free text; the summary's infrastructure figure and communities reached move."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_platform import RunningPlatform, auth, platform_with_own_nats, stream_messages, wait_for

pytestmark = pytest.mark.e2e
STREAM = "E2EINFRASTRUCTURE"


@pytest.fixture(scope="module")
def infrastructure_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningPlatform, str]]:
    with platform_with_own_nats(tmp_path_factory.mktemp("crp-dev-infrastructure"), STREAM) as running:
        yield running


def test_assessment_project_completion_moves_the_infrastructure_figures(infrastructure_platform: Any) -> None:
    platform, nats_url = infrastructure_platform
    assert f"infrastructure http://127.0.0.1:{platform.port + 4}" in "".join(platform.output)
    tag = uuid.uuid4().hex[:6]
    private = {"title": f"Bashiqa water tower {tag}", "contractor": f"Tigris Builders {tag}",
               "authority": f"Bashiqa water directorate {tag}", "local_authority": f"Bashiqa municipality {tag}",
               "note": f"Tower foundations poured {tag}", "need": f"The tower leaks {tag}",
               "divider": f"Land dispute {tag}", "risk": f"Jobs for one group only {tag}"}
    with httpx.Client(base_url=platform.url, headers=auth("programme_manager"), timeout=10) as client:
        assert client.get("/readyz").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/v1/infrastructure-projects/{project_id}/status", "/api/v1/community-assessments",
                "/api/v1/infrastructure-projects/geojson"} <= set(paths)

        def figures() -> dict[str, Any]:
            return client.get("/api/v1/indicators/summary").json()

        before = figures()
        before_ninewa = client.get("/api/v1/indicators/summary?governorate=IQG15").json()
        before_anbar = client.get("/api/v1/indicators/summary?governorate=IQG01").json()
        community = client.post("/api/v1/communities", json={"name": f"Bashiqa {tag}", "district_pcode": "IQG15Q05"})
        assert community.status_code == 201, community.text
        community_id = community.json()["id"]
        assessment = client.post("/api/v1/community-assessments", json={
            "community_id": community_id, "assessed_on": "2026-09-01", "local_authority": private["local_authority"],
            "participants": {"female": 20, "male": 22, "idp": 10, "returnee": 16, "host_community": 16},
            "priorities": [{"sector": "water", "need": private["need"]}],
            "contributions": [{"kind": "labour", "description": "volunteer labour"}],
            "conflict_sensitivity": {"groups_present": ["returnees", "hosts"], "dividers": [private["divider"]],
                                     "connectors": ["the market"], "risks": [{"description": private["risk"]}]}})
        assert assessment.status_code == 201, assessment.text
        completed_assessment = client.post(f"/api/v1/community-assessments/{assessment.json()['id']}/completion",
                                           json={"completed_on": "2026-09-02"})
        assert completed_assessment.status_code == 200, completed_assessment.text
        body = completed_assessment.json()
        project = client.post("/api/v1/infrastructure-projects", json={
            "title": private["title"], "sector": "water", "community_id": community_id,
            "catchment_population": 2500, "catchment": {"female": 1300, "male": 1200, "returnee": 900},
            "assessment_priority_id": body["priorities"][0]["id"],
            "risks_to_mitigate": [body["conflict_sensitivity"]["risks"][0]["id"]],
            "contractor": private["contractor"], "budget": "93517.29", "currency": "USD",
            "latitude": 36.446127, "longitude": 43.346913})
        assert project.status_code == 201 and project.json()["status"] == "planned", project.text
        project_id = project.json()["id"]
        unjustified = client.post("/api/v1/infrastructure-projects", json={
            "title": "x", "sector": "roads", "community_id": community_id, "catchment_population": 10})
        assert unjustified.status_code == 422
        steps = [("in_progress", "2026-10-01", {}), ("completed", "2026-11-15", {}),
                 ("handed_over", "2026-11-20", {"authority": private["authority"]})]
        for status, on, extra in steps[:1]:
            resp = client.post(f"/api/v1/infrastructure-projects/{project_id}/status",
                               json={"status": status, "on": on, **extra})
            assert resp.status_code == 200, resp.text
        progress = client.post(f"/api/v1/infrastructure-projects/{project_id}/progress",
                               json={"percent": 60, "reported_on": "2026-10-20", "note": private["note"]},
                               headers=auth("partner_system"))
        assert progress.status_code == 201, progress.text
        for status, on, extra in steps[1:]:
            resp = client.post(f"/api/v1/infrastructure-projects/{project_id}/status",
                               json={"status": status, "on": on, **extra})
            assert resp.status_code == 200 and resp.json()["status"] == status, resp.text
        assert client.post(f"/api/v1/infrastructure-projects/{project_id}/status",
                           json={"status": "cancelled", "on": "2026-11-21", "reason": "x"}).status_code == 409
        geojson = client.get(f"/api/v1/infrastructure-projects/geojson?community_id={community_id}")
        assert geojson.status_code == 200 and geojson.headers["content-type"].startswith("application/geo+json")
        features = geojson.json()["features"]
        assert [(f["id"], f["geometry"]["coordinates"]) for f in features] == [(project_id, [43.346913, 36.446127])]

        wait_for(lambda: figures()["individuals_benefiting_from_infrastructure"]
                 == before["individuals_benefiting_from_infrastructure"] + 2500, timeout=20)
        after = figures()
        assert after["communities_reached"] == before["communities_reached"] + 1
        assert after["projects_completed"] == before["projects_completed"] + 1
        assert after["projects_completed_by_sector"]["water"] == before["projects_completed_by_sector"].get("water",
                                                                                                            0) + 1
        assert after["communities_with_completed_assessment"] == before["communities_with_completed_assessment"] + 1
        assert (after["individuals_benefiting_from_infrastructure_estimate"]
                == before["individuals_benefiting_from_infrastructure_estimate"] + 2500)
        scoped = client.get("/api/v1/indicators/summary?governorate=IQG15").json()
        assert scoped["projects_completed"] == before_ninewa["projects_completed"] + 1
        anbar = client.get("/api/v1/indicators/summary?governorate=IQG01").json()
        assert anbar["projects_completed"] == before_anbar["projects_completed"]  # the project is in Ninewa
        public = client.get("/api/v1/public/indicators/summary").json()
        assert (public["individuals_benefiting_from_infrastructure"]
                == after["individuals_benefiting_from_infrastructure"])

    events = asyncio.run(stream_messages(nats_url, STREAM))
    mine = [e for e in events if e["data"].get("project_id") == project_id]
    assert [e["type"] for e in mine] == [
        "crp.infrastructure.project.created.v1", "crp.infrastructure.project.status_changed.v1",
        "crp.infrastructure.project.progress_recorded.v1", "crp.infrastructure.project.status_changed.v1",
        "crp.infrastructure.project.handed_over.v1"]
    completed = next(e["data"] for e in mine if e["data"]["status"] == "completed")
    assert (completed["catchment_population"], completed["catchment_female"], completed["catchment_male"],
            completed["catchment_returnee"], completed["completed_on"], completed["community_id"],
            completed["governorate_pcode"], completed["sector"]) == (2500, 1300, 1200, 900, "2026-11-15",
                                                                    community_id, "IQG15", "water")
    assert any(e["type"] == "crp.infrastructure.community_assessment.completed.v1"
               and e["data"]["community_id"] == community_id for e in events)
    text = json.dumps([e for e in events if e["type"].startswith("crp.infrastructure.")], ensure_ascii=False)
    for value in [*private.values(), "36.446127", "43.346913", "volunteer labour", "93517.29"]:
        assert value not in text, value
