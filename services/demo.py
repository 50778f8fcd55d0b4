"""`crp dev --demo`: a small, plausible data set loaded through the public API (the gateway)."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from shared.auth import issue_token
from shared.settings import CommonSettings

COMMUNITIES = [
    ("Al-Mosul Old City", "الموصل القديمة", "IQG15Q05"),
    ("Sinjar centre", "مركز سنجار", "IQG15Q07"),
    ("Al-Ramadi", "الرمادي", "IQG01Q03"),
]
PEOPLE = [
    ("حسين", "جاسم", "كريم", "male", "1986-02-17", "returnee"),
    ("فاطمة", "حسين", "عباس", "female", "1992-09-14", "idp"),
    ("Mohammed", "Kareem", "Jassim", "male", "1979-01-20", "host_community"),
    ("زينب", "كاظم", "جواد", "female", "2001-06-30", "returnee"),
    ("عبد الله", "سالم", "محمود", "male", "1965-11-11", "idp"),
    ("Noor", "Hadi", "Salman", "female", "1998-03-08", "returnee"),
]


# A grant call, and which demo people apply (index into PEOPLE), with the tranches paid so far.
GRANT_CALL = {"name": "Small business recovery, round 1", "sector": "food processing", "budget": "20000.00",
              "currency": "USD", "opens_on": "2026-10-01", "closes_on": "2027-12-31", "tranches": 2,
              "monitoring_required": True,
              "eligibility": {"min_age": 18, "max_age": 60, "disability_priority": True},
              "criteria": [{"name": "viability", "weight": 3}, {"name": "vulnerability", "weight": 2}]}
GRANTS = [  # (person, business, amount, tranches paid)
    (0, "Bakery", "3000.00", 1),
    (1, "Tailoring workshop", "2500.00", 1),
    (3, "Mobile phone repair", "2000.00", 0),
]


def load_demo(base_url: str) -> str:
    """Create communities, register people, open a grant call, approve and disburse grants; returns a one-line
    account of what was loaded. Loading again adds nothing (Idempotency-Key)."""
    token = issue_token(CommonSettings(), roles=["programme_manager"], sub="demo-loader")
    headers = {"Authorization": f"Bearer {token}"}
    registered = 0
    people: dict[int, str] = {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        community_ids = []
        for name, name_ar, district in COMMUNITIES:
            resp = client.post("/api/v1/communities", json={"name": name, "name_ar": name_ar,
                                                            "district_pcode": district},
                               headers={"Idempotency-Key": f"demo-community-{district}"})
            resp.raise_for_status()
            community_ids.append(resp.json()["id"])
        for i, (first, father, grandfather, sex, dob, status) in enumerate(PEOPLE):
            body = {"first_name": first, "father_name": father, "grandfather_name": grandfather, "sex": sex,
                    "date_of_birth": dob, "displacement_status": status,
                    "community_id": community_ids[i % len(community_ids)],
                    "consent": {"given": True, "obtained_on": "2026-10-01"}}
            resp = client.post("/api/v1/beneficiaries", json=body,
                               headers={"Idempotency-Key": f"demo-person-{i}"})
            if resp.status_code == 201:
                registered += 1
                people[i] = resp.json()["id"]
            elif resp.status_code != 409:  # 409: already loaded by an earlier --demo
                resp.raise_for_status()
        approved, disbursed = _load_grants(client, people)
        completed = load_training(client, community_ids[0], list(people.values())) if people else 0
        cases, activities = load_feedback(client, community_ids)
        projects_completed = load_infrastructure(client, community_ids)
    return (f"demo data: {len(COMMUNITIES)} communities, {registered} people registered, "
            f"{approved} grants approved, {disbursed} disbursed, {completed} trainings completed, "
            f"{cases} feedback cases, {activities} community activities, "
            f"{projects_completed} infrastructure projects completed")


def _load_grants(client: httpx.Client, people: dict[int, str]) -> tuple[int, int]:
    resp = client.post("/api/v1/grant-calls", json=GRANT_CALL, headers={"Idempotency-Key": "demo-grant-call-1"})
    resp.raise_for_status()
    call_id = resp.json()["id"]
    approved = disbursed = 0
    for person, business, amount, tranches in GRANTS:
        if person not in people:
            continue
        resp = client.post("/api/v1/grants", headers={"Idempotency-Key": f"demo-grant-{person}"}, json={
            "beneficiary_id": people[person], "business_name": business, "sector": GRANT_CALL["sector"],
            "amount_requested": amount, "currency": GRANT_CALL["currency"], "call_id": call_id})
        resp.raise_for_status()
        grant_id = resp.json()["id"]
        resp = client.post(f"/api/v1/grants/{grant_id}/approval", json={"amount_approved": amount},
                           headers={"Idempotency-Key": f"demo-approval-{person}"})
        resp.raise_for_status()
        approved += 1
        if tranches:
            # The date is today's (a payment follows its approval): the key carries it, and a later load that
            # finds the tranche paid already gets 409.
            today = date.today().isoformat()
            resp = client.post(f"/api/v1/grants/{grant_id}/disbursements",
                               json={"amount": f"{float(amount) / 2:.2f}", "disbursed_on": today},
                               headers={"Idempotency-Key": f"demo-disbursement-{person}-{today}"})
            if resp.status_code not in (201, 409):
                resp.raise_for_status()
            disbursed += 1
    return approved, disbursed


def load_training(client: httpx.Client, community_id: str, people: list[str]) -> int:
    """A tailoring course in Mosul: enrolments, four sessions of attendance, completions (one below the
    threshold stays enrolled), and a market assessment with a matching opportunity. Returns completions."""

    def post(path: str, body: dict[str, object], key: str) -> dict[str, object]:
        resp = client.post(path, json=body, headers={"Idempotency-Key": f"demo-{key}"})
        resp.raise_for_status()
        return resp.json()

    course = post("/api/v1/courses", {"title": "Tailoring and garment production", "skill_area": "tailoring",
                                      "provider": "Mosul vocational training centre", "community_id": community_id,
                                      "start_date": "2026-10-01", "end_date": "2026-11-15", "capacity": 4,
                                      "planned_sessions": 4, "completion_threshold": 75}, "course-tailoring")
    enrolments = [str(post(f"/api/v1/courses/{course['id']}/enrolments", {"beneficiary_id": person},
                           f"enrol-{i}")["id"]) for i, person in enumerate(people[:4])]
    for session in range(1, 5):
        records = [{"enrolment_id": e, "present": i != len(enrolments) - 1 or session <= 2}
                   for i, e in enumerate(enrolments)]
        post(f"/api/v1/courses/{course['id']}/attendance",
             {"session": session, "held_on": f"2026-10-{session * 7:02d}", "records": records}, f"attend-{session}")
    completed = 0
    for i, enrolment in enumerate(enrolments[:-1]):
        post(f"/api/v1/enrolments/{enrolment}/completion", {"completed_on": "2026-11-15", "certified": True},
             f"complete-{i}")
        completed += 1
    assessment = post("/api/v1/market-assessments", {"title": "Ninewa labour market assessment 2026",
                                                     "governorate_pcode": "IQG15", "conducted_on": "2026-09-15"},
                      "assessment-ninewa")
    post("/api/v1/job-opportunities", {"market_assessment_id": assessment["id"], "employer": "Nineveh Garments",
                                       "sector": "garments", "skill_area": "tailoring", "openings": 6,
                                       "period_start": "2026-11-01", "period_end": "2027-04-30"}, "opportunity-1")
    return completed


# Feedback: (community index, channel, category, description, anonymous, steps it goes through).
FEEDBACK = [
    (0, "hotline", "information_request", "When does the next grant call open?", False,
     ["acknowledged", "resolved", "closed"]),
    (0, "suggestion_box", "minor_dissatisfaction", "The distribution queue had no shade.", True,
     ["acknowledged", "in_progress"]),
    (1, "in_person", "appreciation", "Thank you for repairing the school roof.", True, []),
    (2, "whatsapp", "sea", "A report for the PSEA focal point.", True, []),
]
ACTIVITIES = [  # (community index, kind, held on, total, female, male, idp, returnee, host community)
    (1, "reconciliation", "2026-10-20", 36, 14, 22, 10, 16, 10),
    (0, "dialogue", "2026-10-27", 24, 12, 12, 6, 8, 10),
    (2, "civic_engagement", "2026-11-03", 30, 16, 14, 5, 5, 20),
]


def load_feedback(client: httpx.Client, community_ids: list[str]) -> tuple[int, int]:
    """A resource centre per community, feedback cases moving through their lifecycle (one sensitive, for the
    PSEA focal point alone) and community activities. Returns (cases, activities)."""

    def post(path: str, body: dict[str, object], key: str) -> dict[str, object]:
        resp = client.post(path, json=body, headers={"Idempotency-Key": f"demo-{key}"})
        resp.raise_for_status()
        return resp.json()

    centres = [str(post("/api/v1/resource-centres", {
        "name": f"Community resource centre {i + 1}", "community_id": community, "opening_hours": "Sun-Thu 08:00-14:00",
        "contact_channel": "hotline 80069"}, f"centre-{i}")["id"]) for i, community in enumerate(community_ids)]
    for i, (where, channel, category, description, anonymous, steps) in enumerate(FEEDBACK):
        case = post("/api/v1/feedback", {"channel": channel, "category": category, "description": description,
                                         "community_id": community_ids[where], "resource_centre_id": centres[where],
                                         "anonymous": anonymous}, f"feedback-{i}")
        for step in steps:
            if step == "closed":
                post(f"/api/v1/feedback/{case['id']}/response",
                     {"response": "The next call opens in January; the centre will announce it."}, f"response-{i}")
            body: dict[str, object] = {"status": step}
            if step == "closed":
                body["satisfaction"] = "satisfied"
            post(f"/api/v1/feedback/{case['id']}/status", body, f"feedback-{i}-{step}")
    for i, (where, kind, held_on, total, female, male, idp, returnee, host) in enumerate(ACTIVITIES):
        post("/api/v1/community-activities", {
            "kind": kind, "community_id": community_ids[where], "held_on": held_on,
            "resource_centre_id": centres[where], "facilitators": ["Al-Amal Association"],
            "participants": {"total": total, "female": female, "male": male, "idp": idp, "returnee": returnee,
                             "host_community": host},
            "groups_represented": ["youth", "women", "tribal_leaders"]}, f"activity-{i}")
    return len(FEEDBACK), len(ACTIVITIES)
# Community assessments (index into COMMUNITIES) and the projects that answer them.
ASSESSMENTS = [
    (0, {"assessed_on": "2026-06-10", "local_authority": "Al-Mosul municipality",
         "participants": {"female": 18, "male": 21, "idp": 6, "returnee": 20, "host_community": 13},
         "priorities": [{"sector": "water", "need": "The old city network loses most of its water"},
                        {"sector": "education", "need": "Two primary schools still have war damage"}],
         "contributions": [{"kind": "labour", "description": "Volunteer labour for trench digging"}],
         "conflict_sensitivity": {
             "groups_present": ["returnee families", "host families", "displaced families"],
             "dividers": ["Returnees and hosts dispute who is served first"],
             "connectors": ["The market traders' association"],
             "risks": [{"description": "Works crews hired from one group only",
                        "mitigation": "Mixed crews chosen with the community committee"}]}}),
    (2, {"assessed_on": "2026-05-20", "local_authority": "Al-Ramadi district council",
         "participants": {"female": 11, "male": 15, "idp": 4, "returnee": 12, "host_community": 10},
         "priorities": [{"sector": "roads", "need": "The road to the market floods every winter"}],
         "contributions": [{"kind": "land", "description": "Land for the drainage channel"}]}),
]
PROJECTS = [  # (assessment index or None, community index, body, transitions)
    (0, 0, {"title": "Old city water network rehabilitation", "sector": "water", "catchment_population": 12500,
            "catchment": {"female": 6300, "male": 6200, "idp": 1500, "returnee": 7000, "host_community": 4000},
            "budget": "185000.00", "currency": "USD", "contractor": "Nineveh Water Works",
            "latitude": 36.3406, "longitude": 43.1300},
     [("in_progress", "2026-07-01", {}), ("completed", "2026-10-15", {}),
      ("handed_over", "2026-10-30", {"authority": "Ninewa water directorate"})]),
    (1, 2, {"title": "Market road drainage", "sector": "roads", "catchment_population": 8000,
            "latitude": 33.4258, "longitude": 43.2992},
     [("in_progress", "2026-07-15", {}), ("completed", "2026-11-10", {})]),
    (None, 1, {"title": "Sinjar health centre solar power", "sector": "health", "catchment_population": 4500,
               "justification": "The health directorate's emergency request after the grid failed",
               "latitude": 36.3209, "longitude": 41.8764},
     [("in_progress", "2026-09-01", {})]),
]


def load_infrastructure(client: httpx.Client, community_ids: list[str]) -> int:
    """Completed community assessments, projects answering their priorities (one justified outside them), their
    lifecycle to completion and handover, and progress on the one still running. Returns projects completed."""

    def post(path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        resp = client.post(path, json=body, headers={"Idempotency-Key": f"demo-infra-{key}"})
        resp.raise_for_status()
        return resp.json()

    assessments = []
    for i, (community, body) in enumerate(ASSESSMENTS):
        draft = post("/api/v1/community-assessments", {**body, "community_id": community_ids[community]},
                     f"assessment-{i}")
        assessments.append(post(f"/api/v1/community-assessments/{draft['id']}/completion",
                                {"completed_on": body["assessed_on"]}, f"assessment-{i}-completion"))
    completed = 0
    for i, (assessment, community, body, transitions) in enumerate(PROJECTS):
        answered: dict[str, Any] = {}
        if assessment is not None:
            chosen = assessments[assessment]
            priority = next(p for p in chosen["priorities"] if p["sector"] == body["sector"])
            risks = [r["id"] for r in (chosen["conflict_sensitivity"] or {}).get("risks", [])]
            answered = {"assessment_priority_id": priority["id"], "risks_to_mitigate": risks}
        project = post("/api/v1/infrastructure-projects",
                       {**body, **answered, "community_id": community_ids[community]}, f"project-{i}")
        for status, on, extra in transitions:
            post(f"/api/v1/infrastructure-projects/{project['id']}/status", {"status": status, "on": on, **extra},
                 f"project-{i}-{status}")
            completed += status == "completed"
        if transitions[-1][0] == "in_progress":
            post(f"/api/v1/infrastructure-projects/{project['id']}/progress",
                 {"percent": 45, "reported_on": "2026-11-01", "note": "Panels installed, inverter awaited"},
                 f"project-{i}-progress")
    return completed
