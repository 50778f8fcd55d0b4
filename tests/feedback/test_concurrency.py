"""Atomic check-and-write in the feedback service (SQLite and PostgreSQL): a transition raced eight times
happens once with one event; concurrent wrong PINs are all counted (the lock-out comes exactly at the limit).

The requests really run at the same time: one event loop, ``asyncio.gather`` over the ASGI transport, each
request on its own database connection. No timing is asserted, only outcomes.
"""

from __future__ import annotations

import asyncio

from services.feedback.models import FeedbackHistory
from tests.beneficiaries.test_api import assert_problem
from tests.feedback.conftest import Platform

RACERS = 8


async def test_a_transition_raced_eight_times_happens_once(platform: Platform) -> None:
    mosul = await platform.community()
    for category, role in (("major_dissatisfaction", "cfm_officer"), ("sea", "psea_focal_point")):
        case = await platform.submit(mosul, category)
        results = await asyncio.gather(*(platform.move(case["id"], "acknowledged", role=role)
                                         for _ in range(RACERS)))
        assert sorted(r.status_code for r in results) == [200] + [409] * (RACERS - 1), [r.text for r in results]
        for loser in (r for r in results if r.status_code == 409):
            assert assert_problem(loser, 409)["type"].endswith(("concurrent-change", "invalid-transition"))
        events = [e for e in await platform.events(".status_changed.v1") if e["data"]["feedback_id"] == case["id"]]
        assert len(events) == 1 and events[0]["data"]["revision"] == 2
        assert await platform.count(FeedbackHistory, FeedbackHistory.feedback_id == case["id"]) == 2


async def test_concurrent_closings_and_reopenings_leave_one_outcome(platform: Platform) -> None:
    case = await platform.submit(await platform.community())
    await platform.move(case["id"], "resolved")
    await platform.feedback.post(f"/api/v1/feedback/{case['id']}/response", headers=platform.token("cfm_officer"),
                                 json={"response": "Done"})
    results = await asyncio.gather(*(platform.move(case["id"], "closed" if i % 2 else "in_progress")
                                     for i in range(RACERS)))
    assert sorted(r.status_code for r in results) == [200] + [409] * (RACERS - 1), [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200).json()["status"]
    events = [e for e in await platform.events(".status_changed.v1") if e["data"]["status"] == winner]
    assert len(events) == 1


async def test_concurrent_wrong_pins_are_all_counted(platform: Platform) -> None:
    case = await platform.submit(await platform.community())
    path = f"/api/v1/public/feedback/{case['reference']}/status"
    wrong = "999999" if case["pin"] != "999999" else "111111"
    results = await asyncio.gather(*(platform.feedback.get(path, headers={
        "X-Feedback-PIN": wrong, "X-Forwarded-For": f"203.0.113.{i}"}) for i in range(12)))
    codes = sorted(r.status_code for r in results)
    assert codes == [404] * 5 + [429] * 7, [r.text for r in results]  # the fifth wrong PIN locked the reference
    assert_problem(await platform.feedback.get(path, headers={"X-Feedback-PIN": case["pin"]}), 429)
