"""`crp dev --demo`: a small, plausible data set loaded through the public API (the gateway)."""

from __future__ import annotations

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


def load_demo(base_url: str) -> str:
    """Create communities and register people; returns a one-line account of what was loaded."""
    token = issue_token(CommonSettings(), roles=["programme_manager"], sub="demo-loader")
    headers = {"Authorization": f"Bearer {token}"}
    registered = 0
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
            elif resp.status_code != 409:  # 409: already loaded by an earlier --demo
                resp.raise_for_status()
    return f"demo data: {len(COMMUNITIES)} communities, {registered} people registered"
