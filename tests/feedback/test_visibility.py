"""The visibility matrix: every role against a sensitive and an ordinary case, for get, history, audit, list,
counts and every action. A sensitive case exists only for the PSEA focal point (admin included, everyone else
gets the 404 of a case that does not exist, and never finds it in a list or a count); ordinary cases are run by
cfm_officer, programme_manager and admin; other roles are refused by role (403)."""

from __future__ import annotations

from typing import Any

from shared.auth import ROLES
from tests.beneficiaries.test_api import assert_problem
from tests.feedback.conftest import Platform

HANDLES = {"ordinary": {"admin", "programme_manager", "cfm_officer"}, "sensitive": {"psea_focal_point"}}
CASE_ROLES = {"admin", "programme_manager", "cfm_officer", "psea_focal_point"}  # past the role guard
COUNT_ROLES = CASE_ROLES | {"me_officer", "viewer"}
CATEGORY = {"ordinary": "major_dissatisfaction", "sensitive": "sea"}
ACTIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("GET", "/history", None),
    ("GET", "/audit", None),
    ("POST", "/status", {"status": "acknowledged"}),
    ("POST", "/response", {"response": "We have sent a technician."}),
    ("POST", "/referral", {"referred_to": "Water directorate", "consent": True}),
    ("POST", "/pin", None),
]


def expected(role: str, kind: str) -> int:
    if role not in CASE_ROLES:
        return 403
    return 200 if role in HANDLES[kind] else 404


async def test_each_role_against_sensitive_and_ordinary_cases(platform: Platform) -> None:
    client = platform.feedback
    mosul = await platform.community()
    shared = {kind: await platform.submit(mosul, CATEGORY[kind]) for kind in HANDLES}
    for role in ROLES:
        headers = platform.token(role)
        for kind in HANDLES:
            # a handler acts on a case of its own (the actions change it); the others try the shared one
            case = await platform.submit(mosul, CATEGORY[kind]) if role in HANDLES[kind] else shared[kind]
            for method, suffix, body in ACTIONS:
                resp = await client.request(method, f"/api/v1/feedback/{case['id']}{suffix}", json=body,
                                            headers=headers)
                want = expected(role, kind)
                if want == 200:
                    assert resp.status_code == 200, (role, kind, suffix, resp.text)
                else:
                    problem = assert_problem(resp, want)
                    if want == 404:  # word for word the answer for a case that does not exist
                        assert problem["detail"] == f"No feedback {case['id']}", (role, kind, suffix)
            listed = await client.get("/api/v1/feedback?limit=500", headers=headers)
            if role not in CASE_ROLES:
                assert_problem(listed, 403)
            else:
                ids = {item["id"] for item in listed.json()["items"]}
                assert (shared[kind]["id"] in ids) == (role in HANDLES[kind]), (role, kind)
                assert all(item["sensitive"] == (role == "psea_focal_point") for item in listed.json()["items"])
                filtered = await client.get("/api/v1/feedback?category=sea", headers=headers)
                assert (filtered.json()["items"] != []) == (role == "psea_focal_point")
            counts = await client.get("/api/v1/feedback/counts?by=category", headers=headers)
            if role not in COUNT_ROLES:
                assert_problem(counts, 403)
            else:
                keys = {item["key"]: item["count"] for item in counts.json()["items"]}
                sees = role in HANDLES[kind] or (kind == "ordinary" and role in {"me_officer", "viewer"})
                assert (CATEGORY[kind] in keys) == sees, (role, kind, keys)
                assert counts.json()["total"] == sum(keys.values())
            for by in ("status", "channel"):  # no count of any kind reveals a sensitive case
                other = await client.get(f"/api/v1/feedback/counts?by={by}", headers=headers)
                if role in COUNT_ROLES:
                    assert other.json()["total"] == counts.json()["total"]


async def test_intake_roles_and_what_a_submitter_sees(platform: Platform) -> None:
    mosul = await platform.community()
    for role in ("cfm_officer", "case_worker", "partner_system", "programme_manager", "psea_focal_point", "admin"):
        receipt = await platform.submit(mosul, "staff_misconduct", role=role)
        assert receipt["sensitive"] is True and receipt["pin"]
        seen = await platform.feedback.get(f"/api/v1/feedback/{receipt['id']}", headers=platform.token(role))
        assert seen.status_code == (200 if role == "psea_focal_point" else 404 if role in CASE_ROLES else 403)
    for role in ("me_officer", "viewer"):
        resp = await platform.feedback.post("/api/v1/feedback", headers=platform.token(role), json={
            "channel": "sms", "category": "appreciation", "description": "thanks", "anonymous": True})
        assert_problem(resp, 403)


async def test_governorate_scope_hides_cases_and_centres(platform: Platform) -> None:
    client = platform.feedback
    mosul, ramadi = await platform.community(), await platform.community("IQG01Q03")
    sensitive = await platform.submit(mosul, "fraud_corruption")
    ordinary = await platform.submit(ramadi)
    unlocated = await platform.submit(None)
    anbar_psea = platform.token("psea_focal_point", governorates=("IQG01",))
    assert_problem(await client.get(f"/api/v1/feedback/{sensitive['id']}", headers=anbar_psea), 404)
    anbar_cfm = platform.token("cfm_officer", governorates=("IQG01",))
    assert (await client.get(f"/api/v1/feedback/{ordinary['id']}", headers=anbar_cfm)).status_code == 200
    # a case without a place is seen only by tokens covering every governorate
    assert_problem(await client.get(f"/api/v1/feedback/{unlocated['id']}", headers=anbar_cfm), 404)
    listed = {i["id"] for i in (await client.get("/api/v1/feedback", headers=anbar_cfm)).json()["items"]}
    assert listed == {ordinary["id"]}
    assert (await client.get(f"/api/v1/feedback/{unlocated['id']}",
                             headers=platform.token("cfm_officer"))).status_code == 200
    counts = (await client.get("/api/v1/feedback/counts", headers=anbar_cfm)).json()
    assert counts["total"] == 1
    centre = await platform.centre(mosul)
    assert_problem(await client.get(f"/api/v1/resource-centres/{centre['id']}", headers=anbar_cfm), 404)
    # an out-of-scope centre cannot be named at intake either (the same answer as an unknown one)
    resp = await client.post("/api/v1/feedback", headers=anbar_cfm, json={
        "channel": "in_person", "category": "appreciation", "description": "Good", "anonymous": True,
        "resource_centre_id": centre["id"]})
    assert assert_problem(resp, 422)["errors"] == [{"loc": ["body", "resource_centre_id"],
                                                    "msg": "unknown resource centre"}]
