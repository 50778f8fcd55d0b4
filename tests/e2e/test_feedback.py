"""End to end through the gateway (`crp dev`, real processes): feedback taken in (a sensitive case included),
followed on the public status page with its reference and PIN (no token), handled, a resource centre and a
community activity recorded; the summary's feedback figures move; and neither the stream nor any log line the
processes wrote holds a description or a contact detail."""

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
STREAM = "E2EFEEDBACK"


@pytest.fixture(scope="module")
def feedback_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningPlatform, str]]:
    with platform_with_own_nats(tmp_path_factory.mktemp("crp-dev-feedback"), STREAM, CRP_LOG_LEVEL="DEBUG") as running:
        yield running


def test_feedback_through_the_gateway_keeps_its_text_to_itself(feedback_platform: Any) -> None:
    platform, nats_url = feedback_platform
    assert f"feedback       http://127.0.0.1:{platform.port + 5}" in "".join(platform.output)
    tag = uuid.uuid4().hex[:8]
    secrets = {"ordinary": f"The water tank in block {tag} leaks",
               "sensitive": f"A distributor named Abu {tag} demanded money",
               "anonymous": f"Queue without shade {tag}",
               "contact": f"+964 770 {tag[:3]} {tag[3:7]}",
               "note": f"Internal note {tag}", "response": f"Fixed on Sunday {tag}",
               "outcome": f"Elders agreed {tag}", "referral": f"Legal aid partner {tag}"}
    cfm, psea, manager = auth("cfm_officer"), auth("psea_focal_point"), auth("programme_manager")
    with httpx.Client(base_url=platform.url, timeout=10) as client:
        assert client.get("/readyz").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/api/v1/feedback", "/api/v1/public/feedback/{reference}/status",
                "/api/v1/community-activities", "/api/v1/resource-centres"} <= set(paths)
        before = client.get("/api/v1/indicators/summary", headers=manager).json()
        community = client.post("/api/v1/communities", headers=manager,
                                json={"name": f"Hay al-Zahraa {tag}", "district_pcode": "IQG15Q05"}).json()["id"]
        centre = client.post("/api/v1/resource-centres", headers=manager, json={
            "name": "Zahraa resource centre", "community_id": community, "opening_hours": "Sun-Thu 08:00-14:00"})
        assert centre.status_code == 201, centre.text
        ordinary = client.post("/api/v1/feedback", headers=cfm, json={
            "channel": "hotline", "category": "major_dissatisfaction", "description": secrets["ordinary"],
            "community_id": community, "anonymous": False, "contact": secrets["contact"]})
        sensitive = client.post("/api/v1/feedback", headers=auth("partner_system"), json={
            "channel": "whatsapp", "category": "sea", "description": secrets["sensitive"], "community_id": community,
            "anonymous": False, "contact": secrets["contact"]})
        anonymous = client.post("/api/v1/feedback", headers=auth("case_worker"), json={
            "channel": "suggestion_box", "category": "minor_dissatisfaction", "description": secrets["anonymous"],
            "resource_centre_id": centre.json()["id"], "anonymous": True})
        for resp in (ordinary, sensitive, anonymous):
            assert resp.status_code == 201, resp.text
        case, abuse, anon = ordinary.json(), sensitive.json(), anonymous.json()

        # only the PSEA focal point sees the sensitive case; admin and the CFM officer get the 404 of nothing
        for headers in (cfm, auth("admin")):
            assert client.get(f"/api/v1/feedback/{abuse['id']}", headers=headers).status_code == 404
        seen = client.get(f"/api/v1/feedback/{abuse['id']}", headers=psea)
        assert seen.status_code == 200 and seen.json()["description"] == secrets["sensitive"]
        referred = client.post(f"/api/v1/feedback/{abuse['id']}/referral", headers=psea, json={
            "referred_to": secrets["referral"], "consent": True, "note": secrets["note"]})
        assert referred.status_code == 200, referred.text

        # the ordinary case is handled and answered; its complainant follows it without an account
        for status in ("acknowledged", "in_progress"):
            assert client.post(f"/api/v1/feedback/{case['id']}/status", headers=cfm,
                               json={"status": status, "note": secrets["note"]}).status_code == 200
        assert client.post(f"/api/v1/feedback/{case['id']}/response", headers=cfm,
                           json={"response": secrets["response"]}).status_code == 200
        assert client.post(f"/api/v1/feedback/{case['id']}/status", headers=cfm,
                           json={"status": "resolved"}).status_code == 200
        public = client.get(f"/api/v1/public/feedback/{case['reference']}/status",
                            headers={"X-Feedback-PIN": case["pin"]})
        assert public.status_code == 200, public.text
        assert (public.json()["status"], public.json()["response"]) == ("resolved", secrets["response"])
        assert secrets["note"] not in public.text
        anon_status = client.get(f"/api/v1/public/feedback/{anon['reference']}/status",
                                 headers={"X-Feedback-PIN": anon["pin"]})
        assert anon_status.json()["status"] == "received"
        wrong = "000000" if anon["pin"] != "000000" else "111111"
        for _ in range(5):
            miss = client.get(f"/api/v1/public/feedback/{anon['reference']}/status",
                              headers={"X-Feedback-PIN": wrong})
            assert miss.status_code == 404 and miss.headers["content-type"].startswith("application/problem+json")
        locked = client.get(f"/api/v1/public/feedback/{anon['reference']}/status",
                            headers={"X-Feedback-PIN": anon["pin"]})
        assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0

        activity = client.post("/api/v1/community-activities", headers=manager, json={
            "kind": "reconciliation", "community_id": community, "held_on": "2026-11-20",
            "resource_centre_id": centre.json()["id"], "facilitators": [f"Sheikh {tag}"],
            "participants": {"total": 30, "female": 12, "male": 18, "idp": 10, "returnee": 10, "host_community": 10},
            "groups_represented": ["tribal_leaders", "youth"], "outcome": secrets["outcome"]})
        assert activity.status_code == 201, activity.text

        def figures() -> dict[str, Any]:
            return client.get("/api/v1/indicators/summary", headers=manager).json()

        expected = {"feedback_received": before["feedback_received"] + 3,
                    "resource_centres_active": before["resource_centres_active"] + 1,
                    "community_activity_participants": before["community_activity_participants"] + 30,
                    "communities_with_reconciliation_activity": before["communities_with_reconciliation_activity"] + 1}
        wait_for(lambda: {k: figures()[k] for k in expected} == expected, timeout=20)
        now = figures()
        assert now["feedback_received_by_category"].get("sensitive", 0) == \
            before["feedback_received_by_category"].get("sensitive", 0) + 1
        assert "sea" not in now["feedback_received_by_category"]
        assert now["share_feedback_resolved_within_service_levels"] == 1.0

    events = asyncio.run(stream_messages(nats_url, STREAM))
    feedback_events = [e for e in events if e["type"].startswith("crp.feedback.")]
    assert {e["type"] for e in feedback_events} >= {
        "crp.feedback.feedback.received.v1", "crp.feedback.feedback.status_changed.v1",
        "crp.feedback.resource_centre.created.v1", "crp.feedback.community_activity.recorded.v1"}
    stream_text = json.dumps(events, ensure_ascii=False)
    logs = list((platform.data_dir / "logs").glob("*.log"))
    assert {p.stem for p in logs} >= {"feedback", "gateway", "indicators"}
    log_text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "feedback" in log_text  # the processes did log these requests
    for where, text in (("stream", stream_text), ("logs", log_text)):
        for name, secret in secrets.items():
            assert secret not in text, (name, where)
        assert tag not in text, where  # it is only ever in free text (and a community's name)
    assert case["pin"] not in stream_text
