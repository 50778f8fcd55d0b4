"""Capacity under concurrent enrolment (SQLite and PostgreSQL): never more places taken than the course has.

The requests really run at the same time: one event loop, ``asyncio.gather`` over the ASGI transport, each
request on its own database connection. No timing is asserted, only outcomes.
"""

from __future__ import annotations

import asyncio

from services.training.models import Course, Enrolment
from tests.beneficiaries.test_api import assert_problem
from tests.training.conftest import Platform
from tests.training.test_api import outbox_events

CAPACITY = 4
RACERS = 12


async def test_concurrent_enrolments_never_exceed_capacity(platform: Platform) -> None:
    mosul = await platform.community()
    course = await platform.course(mosul, capacity=CAPACITY)
    people = [await platform.person(mosul) for _ in range(RACERS)]
    results = await asyncio.gather(*(platform.enrol(course["id"], p) for p in people))
    created = [r for r in results if r.status_code == 201]
    assert len(created) == CAPACITY, [r.text for r in results]
    for loser in (r for r in results if r.status_code != 201):
        body = assert_problem(loser, 409)
        assert body["type"].endswith(("course-full", "concurrent-change"))
    assert await platform.count(Enrolment, Enrolment.status == "enrolled") == CAPACITY
    stored = (await platform.training.get(f"/api/v1/courses/{course['id']}", headers=platform.token("case_worker")))
    assert stored.json()["enrolled_count"] == CAPACITY


async def test_concurrent_enrolments_with_the_waiting_list_and_the_same_person(platform: Platform) -> None:
    mosul = await platform.community()
    course = await platform.course(mosul, capacity=CAPACITY)
    people = [await platform.person(mosul) for _ in range(RACERS)]
    # every person twice at once: each is enrolled or waitlisted once at most
    results = await asyncio.gather(*(platform.enrol(course["id"], p, waitlist=True) for p in people + people))
    created = [r.json() for r in results if r.status_code == 201]
    for loser in (r for r in results if r.status_code != 201):
        assert_problem(loser, 409)
    assert len({e["beneficiary_id"] for e in created}) == len(created)  # nobody twice
    assert sum(1 for e in created if e["status"] == "enrolled") == CAPACITY
    assert await platform.count(Enrolment, Enrolment.status == "enrolled") == CAPACITY
    waiting = await platform.count(Enrolment, Enrolment.status == "waitlisted")
    assert waiting == len(created) - CAPACITY
    assert await platform.count(Course) == 1


async def test_concurrent_dropouts_promote_the_waiting_list_in_order(platform: Platform) -> None:
    mosul = await platform.community()
    course = await platform.course(mosul, capacity=3)
    people = [await platform.person(mosul) for _ in range(7)]
    enrolled = [(await platform.enrol(course["id"], p)).json()["id"] for p in people[:3]]
    waiting = [(await platform.enrol(course["id"], p, waitlist=True)).json()["id"] for p in people[3:]]
    results = await asyncio.gather(*(platform.training.post(
        f"/api/v1/enrolments/{e}/dropout", headers=platform.token("case_worker"),
        json={"dropped_on": "2026-02-01", "reason": "health"}) for e in enrolled))
    assert [r.status_code for r in results] == [200, 200, 200], [r.text for r in results]
    statuses = [(await platform.training.get(f"/api/v1/enrolments/{e}", headers=platform.token("case_worker"))
                 ).json()["status"] for e in waiting]
    assert statuses == ["enrolled", "enrolled", "enrolled", "waitlisted"]  # the first three, in order
    stored = await platform.training.get(f"/api/v1/courses/{course['id']}", headers=platform.token("case_worker"))
    assert stored.json()["enrolled_count"] == 3


async def test_a_completion_raced_twice_happens_once(platform: Platform) -> None:
    mosul = await platform.community()
    course = await platform.course(mosul, completion_threshold=0)
    enrolment = (await platform.enrol(course["id"], await platform.person(mosul))).json()["id"]
    results = await asyncio.gather(*(platform.training.post(
        f"/api/v1/enrolments/{enrolment}/completion", headers=platform.token("case_worker"),
        json={"completed_on": "2026-03-01"}) for _ in range(6)))
    assert sorted(r.status_code for r in results) == [200] + [409] * 5, [r.text for r in results]
    assert len(await outbox_events(platform, ".enrolment.completed.v1")) == 1
