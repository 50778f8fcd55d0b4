"""Transitions under concurrency (SQLite and PostgreSQL): the same transition raced happens once, with one event.

The requests really run at the same time: one event loop, ``asyncio.gather`` over the ASGI transport, each
request on its own database connection. No timing is asserted, only outcomes.
"""

from __future__ import annotations

import asyncio

from services.infrastructure.models import InfrastructureProject, ProjectProgress
from tests.beneficiaries.test_api import assert_problem
from tests.infrastructure.conftest import Platform

RACERS = 8


async def test_the_same_completion_raced_happens_once_with_one_event(platform: Platform) -> None:
    mosul = await platform.community()
    project = (await platform.project(mosul, None))["id"]
    assert (await platform.status(project, "in_progress", on="2026-10-01")).status_code == 200
    results = await asyncio.gather(*(platform.status(project, "completed", on="2026-11-01") for _ in range(RACERS)))
    assert sorted(r.status_code for r in results) == [200] + [409] * (RACERS - 1), [r.text for r in results]
    for loser in (r for r in results if r.status_code == 409):
        assert assert_problem(loser, 409)["type"].endswith(("invalid-transition", "concurrent-change"))
    completed = [e for e in await platform.events(".project.status_changed.v1") if e["data"]["status"] == "completed"]
    assert len(completed) == 1 and completed[0]["data"]["catchment_population"] == 1200
    assert await platform.count(InfrastructureProject, InfrastructureProject.status == "completed") == 1


async def test_crossed_transitions_one_wins(platform: Platform) -> None:
    """Completion and cancellation of one project at once: exactly one of them happens."""
    mosul = await platform.community()
    project = (await platform.project(mosul, None))["id"]
    await platform.status(project, "in_progress", on="2026-10-01")
    results = await asyncio.gather(*(platform.status(project, status, on="2026-11-01", reason="no access")
                                     for status in ("completed", "cancelled") * (RACERS // 2)))
    winners = [r.json()["status"] for r in results if r.status_code == 200]
    assert len(winners) == 1 and all(r.status_code in (200, 409) for r in results), [r.text for r in results]
    changes = [e for e in await platform.events(".project.status_changed.v1")
               if e["data"]["previous_status"] == "in_progress"]
    assert [e["data"]["status"] for e in changes] == winners


async def test_concurrent_assessment_completions_and_progress_updates(platform: Platform) -> None:
    mosul = await platform.community()
    assessment = await platform.assessment(mosul, complete=False)
    results = await asyncio.gather(*(platform.infrastructure.post(
        f"/api/v1/community-assessments/{assessment['id']}/completion", headers=platform.token("programme_manager"),
        json={"completed_on": "2026-09-12"}) for _ in range(RACERS)))
    assert sorted(r.status_code for r in results) == [200] + [409] * (RACERS - 1), [r.text for r in results]
    assert len(await platform.events(".community_assessment.completed.v1")) == 1
    project = (await platform.project(mosul, assessment["priorities"][0]["id"]))["id"]
    await platform.status(project, "in_progress", on="2026-10-01")
    updates = await asyncio.gather(*(platform.infrastructure.post(
        f"/api/v1/infrastructure-projects/{project}/progress", headers=platform.token("me_officer"),
        json={"percent": 10 * (i + 1), "reported_on": "2026-10-05"}) for i in range(RACERS)))
    stored = [r for r in updates if r.status_code == 201]
    assert stored and all(r.status_code in (201, 409) for r in updates), [r.text for r in updates]
    # every stored update has exactly one event, and nothing of a loser was kept
    assert await platform.count(ProjectProgress) == len(stored)
    assert len(await platform.events(".project.progress_recorded.v1")) == len(stored)
