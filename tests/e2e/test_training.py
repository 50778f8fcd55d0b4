"""End to end through the gateway (`crp dev`, real processes): register, enrol, attend, complete; the indicators
count each person once; the events on the stream carry no personal data.

A person who had a grant and a training is counted once (``tests/indicators/test_reach.py``); here the same holds
for one person trained under two records that were then merged.
"""

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
STREAM = "E2ETRAINING"


@pytest.fixture(scope="module")
def training_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningPlatform, str]]:
    with platform_with_own_nats(tmp_path_factory.mktemp("crp-dev-training"), STREAM) as running:
        yield running


def test_register_enrol_attend_complete_counts_each_person_once(training_platform: Any) -> None:
    platform, nats_url = training_platform
    assert f"training       http://127.0.0.1:{platform.port + 3}" in "".join(platform.output)
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=platform.url, headers=auth("programme_manager"), timeout=10) as client:
        assert client.get("/readyz").status_code == 200
        assert "/api/v1/courses/{course_id}/enrolments" in client.get("/openapi.json").json()["paths"]
        before = client.get("/api/v1/indicators/summary").json()
        community = client.post("/api/v1/communities", json={"name": "Bashiqa", "district_pcode": "IQG15Q05"})
        assert community.status_code == 201, community.text
        people = []
        for i, (first, father, dob) in enumerate([(f"Layla{tag}", "Omar", "1991-02-03"),
                                                  (f"Yusuf{tag}", "Khalid", "1984-07-21"),
                                                  (f"Samir{tag}", "Nabil", "1979-12-30")]):
            resp = client.post("/api/v1/beneficiaries", json={
                "first_name": first, "father_name": father, "sex": "female" if i == 0 else "male",
                "date_of_birth": dob, "displacement_status": "idp", "community_id": community.json()["id"],
                "phone": f"+96477000{i:05d}", "national_id": f"1990{tag}{i}",
                "consent": {"given": True, "obtained_on": "2026-11-20"}, "confirm_not_duplicate": True})
            assert resp.status_code == 201, resp.text
            people.append(resp.json()["id"])
        course = client.post("/api/v1/courses", json={
            "title": "Solar panel installation", "skill_area": "solar_installation", "community_id":
            community.json()["id"], "start_date": "2026-11-01", "end_date": "2026-11-20", "capacity": 3,
            "planned_sessions": 2, "completion_threshold": 50})
        assert course.status_code == 201, course.text
        second_course = client.post("/api/v1/courses", json={
            "title": "Solar panel maintenance", "skill_area": "solar_installation", "community_id":
            community.json()["id"], "start_date": "2026-11-01", "end_date": "2026-11-20", "capacity": 3,
            "completion_threshold": 0})
        enrolments = []
        for person in people[:2]:
            resp = client.post(f"/api/v1/courses/{course.json()['id']}/enrolments", json={"beneficiary_id": person})
            assert resp.status_code == 201, resp.text
            enrolments.append(resp.json()["id"])
        # the third record is the first person registered twice: trained in the other course, then merged
        duplicate = client.post(f"/api/v1/courses/{second_course.json()['id']}/enrolments",
                                json={"beneficiary_id": people[2]})
        assert duplicate.status_code == 201, duplicate.text
        for session in (1, 2):
            resp = client.post(f"/api/v1/courses/{course.json()['id']}/attendance", json={
                "session": session, "held_on": "2026-11-05",
                "records": [{"enrolment_id": e, "present": True} for e in enrolments]})
            assert resp.status_code == 200, resp.text
        for enrolment in [*enrolments, duplicate.json()["id"]]:
            done = client.post(f"/api/v1/enrolments/{enrolment}/completion", json={"completed_on": "2026-11-20"})
            assert done.status_code == 200 and done.json()["status"] == "completed", done.text

        def figures() -> dict[str, Any]:
            return client.get("/api/v1/indicators/summary").json()

        wait_for(lambda: figures()["trainings_completed"] == before["trainings_completed"] + 3, timeout=20)
        assert figures()["individuals_directly_assisted"] == before["individuals_directly_assisted"] + 3
        merged = client.post(f"/api/v1/beneficiaries/{people[0]}/merge", json={"duplicate_id": people[2]})
        assert merged.status_code == 200, merged.text
        wait_for(lambda: figures()["individuals_directly_assisted"] == before["individuals_directly_assisted"] + 2,
                 timeout=20)
        assert figures()["trainings_completed"] == before["trainings_completed"] + 3

    events = asyncio.run(stream_messages(nats_url, STREAM))
    training = [e for e in events if e["type"].startswith("crp.training.")]
    assert {e["type"] for e in training} >= {"crp.training.enrolment.created.v1", "crp.training.enrolment.completed.v1"}
    text = json.dumps(events)
    for personal in (f"Layla{tag}", f"Yusuf{tag}", f"Samir{tag}", "Omar", "Khalid", "Nabil", "1991-02-03",
                     "1984-07-21", "+96477000", f"1990{tag}"):
        assert personal not in text, personal
