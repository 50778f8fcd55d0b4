"""Hardening, end to end on real processes (`crp dev`, our own NATS) through the gateway, generated from the
merged OpenAPI so it grows with the platform:

- the authorisation matrix: every non-public operation answers 401 without a token and with an expired,
  `alg: none`, wrong-issuer, wrong-audience or badly signed one (at the gateway and at the service directly),
  and 403 for each role its `x-roles` does not list;
- a governorate-scoped token never sees an out-of-scope record in any list, get, count, export or error;
- bad input on every write operation is a clear 4xx problem and stores nothing (no event on the stream);
- records with known names, phones, national IDs, business names and complaint texts in every service leave
  none of them on `crp.>` or in any log line.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import nats
import pytest

from services.cli import start_nats
from shared import catalog
from shared.auth import ROLES, issue_token
from shared.settings import CommonSettings
from tests.e2e.test_platform import CRP, ROOT, RunningPlatform, auth, start_platform, stop_platform

pytestmark = pytest.mark.e2e
STREAM = "E2EHARDENING"
WRITE_METHODS = ("post", "put", "patch", "delete")
METHODS = ("get", *WRITE_METHODS)
IN_SCOPE, OUT_OF_SCOPE = "IQG15", "IQG01"  # the records live in Ninewa; the scoped token sees Anbar only


@dataclass
class Hardened:
    platform: RunningPlatform
    nats_url: str
    spec: dict[str, Any]
    ids: dict[str, str] = field(default_factory=dict)  # what we created: kind -> id
    secrets: dict[str, str] = field(default_factory=dict)  # personal data we sent: what -> value


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of the merged OpenAPI, every one."""
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method, path, op


def protected(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Operations that need a credential: those not declared public (``security: []``)."""
    return [(m, p, op) for m, p, op in operations(spec) if op.get("security", spec.get("security")) != []]


def fill(path: str, value: str | None = None) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: value or str(uuid.uuid4()), path)


def service_of(path: str) -> str | None:
    """The service that owns ``path`` (longest prefix of the catalog), None for the gateway's own."""
    owners = [(prefix, e.name) for e in catalog.SERVICES for prefix in e.prefixes
              if path == prefix or path.startswith(prefix + "/")]
    return max(owners)[1] if owners else None


def request(client: httpx.Client, method: str, path: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
    if method in ("post", "put", "patch") and "content" not in kw and "json" not in kw:
        kw["json"] = {}
    return client.request(method.upper(), path, headers=headers, **kw)


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hardened]:
    data_dir = tmp_path_factory.mktemp("crp-dev-hardening")
    nats_proc, nats_url = start_nats(data_dir)  # our own, to read the stream afterwards
    try:
        running = start_platform(data_dir, CRP_NATS_URL=nats_url, CRP_NATS_STREAM=STREAM, CRP_LOG_LEVEL="DEBUG",
                                 CRP_RATE_LIMIT_PER_SECOND="0")
        try:
            spec = httpx.get(f"{running.url}/openapi.json", timeout=30).json()
            assert not spec.get("x-crp-unavailable-services"), spec.get("x-crp-unavailable-services")
            state = Hardened(running, nats_url, spec)
            seed(state)
            yield state
        finally:
            stop_platform(running)
    finally:
        nats_proc.terminate()
        nats_proc.wait(10)


def seed(state: Hardened) -> None:
    """One record of each kind in every service, in Ninewa, carrying personal data we can look for."""
    tag = uuid.uuid4().hex[:8]
    digits = f"{uuid.uuid4().int % 10**7:07d}"
    state.secrets = {
        "first_name": f"Zainab{tag}", "father_name": f"Murad{tag}", "grandfather_name": f"Hamid{tag}",
        "phone": f"+964 771 {digits[:3]} {digits[3:]}", "national_id": f"NID-{tag}-0042",
        "business_name": f"Zainab's Bakery {tag}", "complaint": f"The cash distributor {tag} asked for a bribe",
        "contact": f"+964 750 {digits[3:]} {digits[:3]}", "need": f"Clean water for the {tag} quarter",
        "facilitator": f"Sheikh Adnan {tag}", "activity_outcome": f"Families of {tag} reconciled",
    }
    s, pm = state.secrets, {**auth("programme_manager", "cfm_officer", "psea_focal_point")}
    ids = state.ids
    with httpx.Client(base_url=state.platform.url, headers=pm, timeout=30) as client:
        def post(path: str, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
            resp = client.post(path, json=body)
            assert resp.status_code == expect, (path, resp.status_code, resp.text)
            return resp.json()

        ids["community"] = post("/api/v1/communities", {"name": f"Bashiqa {tag}", "district_pcode": "IQG15Q05"})["id"]
        ids["beneficiary"] = post("/api/v1/beneficiaries", {
            "first_name": s["first_name"], "father_name": s["father_name"], "grandfather_name": s["grandfather_name"],
            "sex": "female", "date_of_birth": "1987-03-14", "displacement_status": "returnee", "phone": s["phone"],
            "national_id": s["national_id"], "community_id": ids["community"],
            "consent": {"given": True, "obtained_on": "2026-11-20"}, "confirm_not_duplicate": True})["id"]
        ids["household"] = post("/api/v1/households", {"community_id": ids["community"], "size": 5})["id"]
        ids["grant"] = post("/api/v1/grants", {
            "beneficiary_id": ids["beneficiary"], "business_name": s["business_name"], "sector": "food",
            "amount_requested": "1500.00", "currency": "USD"})["id"]
        post(f"/api/v1/grants/{ids['grant']}/approval", {"amount_approved": "1500.00"}, 200)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        ids["disbursement"] = post(f"/api/v1/grants/{ids['grant']}/disbursements",
                                   {"amount": "1500.00", "disbursed_on": today})["id"]
        ids["course"] = post("/api/v1/courses", {
            "title": "Tailoring", "skill_area": "tailoring", "community_id": ids["community"],
            "start_date": "2026-11-01", "end_date": "2026-11-20", "capacity": 5, "completion_threshold": 0})["id"]
        ids["enrolment"] = post(f"/api/v1/courses/{ids['course']}/enrolments",
                                {"beneficiary_id": ids["beneficiary"]})["id"]
        ids["assessment"] = post("/api/v1/community-assessments", {
            "community_id": ids["community"], "assessed_on": "2026-09-01", "local_authority": "Bashiqa council",
            "participants": {"female": 20, "male": 22, "idp": 10, "returnee": 16, "host_community": 16},
            "priorities": [{"sector": "water", "need": s["need"]}], "contributions": [],
            "conflict_sensitivity": {"groups_present": ["returnees"], "dividers": [], "connectors": [],
                                     "risks": []}})["id"]
        ids["project"] = _project(client, ids)
        ids["feedback"] = post("/api/v1/feedback", {
            "channel": "hotline", "category": "major_dissatisfaction", "description": s["complaint"],
            "community_id": ids["community"], "anonymous": False, "contact": s["contact"]})["id"]
        ids["sensitive_feedback"] = post("/api/v1/feedback", {
            "channel": "hotline", "category": "sea", "description": s["complaint"] + " (sensitive)",
            "community_id": ids["community"], "anonymous": False, "contact": s["contact"]})["id"]
        ids["centre"] = post("/api/v1/resource-centres",
                             {"name": f"Centre {tag}", "community_id": ids["community"]})["id"]
        ids["activity"] = post("/api/v1/community-activities", {
            "kind": "reconciliation", "community_id": ids["community"], "held_on": "2026-11-20",
            "facilitators": [s["facilitator"]], "participants": {"total": 10, "female": 5, "male": 5},
            "groups_represented": ["youth"], "outcome": s["activity_outcome"]})["id"]


def _project(client: httpx.Client, ids: dict[str, str]) -> str:
    completed = client.post(f"/api/v1/community-assessments/{ids['assessment']}/completion",
                            json={"completed_on": "2026-09-02"})
    assert completed.status_code == 200, completed.text
    resp = client.post("/api/v1/infrastructure-projects", json={
        "title": "Water network", "sector": "water", "community_id": ids["community"], "catchment_population": 100,
        "assessment_priority_id": completed.json()["priorities"][0]["id"], "budget": "1000.00", "currency": "USD"})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


# -- the authorisation matrix ----------------------------------------------------------------------------
def bad_tokens() -> dict[str, str]:
    settings = CommonSettings()
    now = int(time.time())
    claims = {"sub": "intruder", "roles": list(ROLES), "governorates": ["*"], "iat": now, "exp": now + 600,
              "iss": settings.jwt_issuer, "aud": settings.jwt_audience}
    secret = settings.jwt_secret.get_secret_value()
    header, _, signature = jwt.encode(claims, secret, algorithm="HS256").split(".")
    tampered = jwt.utils.base64url_encode(json.dumps({**claims, "sub": "someone"}).encode()).decode()
    return {
        "expired": issue_token(settings, roles=ROLES, ttl_seconds=-120),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "wrong issuer": jwt.encode({**claims, "iss": "https://evil.example"}, secret, algorithm="HS256"),
        "wrong audience": jwt.encode({**claims, "aud": "someone-else"}, secret, algorithm="HS256"),
        "bad signature": jwt.encode(claims, secret + "-not", algorithm="HS256"),
        "tampered payload": f"{header}.{tampered}.{signature}",
        "not a JWT": "definitely-not-a-token",
    }


def test_every_protected_operation_refuses_missing_and_bad_tokens(hardened: Hardened) -> None:
    ops = protected(hardened.spec)
    assert len(ops) > 50 and any(service_of(p) == "indicators" for _, p, _ in ops)
    tokens = bad_tokens()
    failures = []
    with httpx.Client(timeout=30) as client:
        for method, path, _ in ops:
            target = fill(path)
            bases = [hardened.platform.url]
            if (owner := service_of(path)) is not None:  # reaching a service directly grants nothing either
                bases.append(f"http://127.0.0.1:{catalog.port(owner, hardened.platform.port)}")
            for base in bases:
                for name, headers in [("no token", {}), *((n, {"Authorization": f"Bearer {t}"})
                                                         for n, t in tokens.items())]:
                    resp = request(client, method, base + target, headers)
                    if resp.status_code != 401 or not resp.headers["content-type"].startswith(
                            "application/problem+json"):
                        failures.append((method, path, base, name, resp.status_code))
    assert not failures, sorted({f[:2] + f[3:] for f in failures})[:30]


def test_every_role_without_the_right_gets_403(hardened: Hardened) -> None:
    """Generated from ``x-roles`` (the roles the operation's guard admits, ``shared.auth.roles_of``)."""
    guarded = [(m, p, op["x-roles"]) for m, p, op in protected(hardened.spec) if "x-roles" in op]
    owned = {service_of(p) for m, p, _ in protected(hardened.spec) if service_of(p)}
    assert owned <= {service_of(p) for _, p, _ in guarded}, "a service's operations lack x-roles"
    restricted = [(m, p, roles) for m, p, roles in guarded if roles != ["*"]]
    assert restricted
    tokens = {role: auth(role) for role in ROLES}
    cases = []
    for method, path, roles in restricted:
        assert "admin" in roles  # admin always passes
        cases += [(method, path, role, False) for role in sorted(set(ROLES) - set(roles))]
        # and a role that has the right is not refused for its role (whatever else the request lacks)
        cases.append((method, path, next((r for r in roles if r != "admin"), "admin"), True))

    def probe(case: tuple[str, str, str, bool]) -> tuple[Any, ...] | None:
        method, path, role, allowed = case
        resp = request(client, method, fill(path), tokens[role])
        if allowed:
            return (method, path, role, resp.status_code, "allowed role refused") \
                if resp.status_code in (401, 403) else None
        return None if resp.status_code == 403 and resp.json().get("status") == 403 else \
            (method, path, role, resp.status_code)

    with httpx.Client(base_url=hardened.platform.url, timeout=30) as client, ThreadPoolExecutor(8) as pool:
        failures = [f for f in pool.map(probe, cases) if f is not None]
    assert len(cases) > 100
    assert not failures, sorted({f[:2] + f[3:] for f in failures})[:30]


def test_a_scoped_token_never_sees_out_of_scope_records(hardened: Hardened) -> None:
    """Every GET of the merged OpenAPI, with a token holding every role but scoped to another governorate:
    no list, get, count, export or error shows a record of Ninewa or anything written in one."""
    scoped = auth(*ROLES, governorates=(OUT_OF_SCOPE,))
    everywhere = auth(*ROLES)
    ids = set(hardened.ids.values())
    leaks = []
    gets = [(p, op) for m, p, op in protected(hardened.spec) if m == "get"]
    with httpx.Client(base_url=hardened.platform.url, timeout=30) as client:
        # the records exist and are seen with an unscoped token (so the check below can fail)
        seen = client.get(f"/api/v1/beneficiaries/{hardened.ids['beneficiary']}", headers=everywhere)
        assert seen.status_code == 200 and seen.json()["first_name"] == hardened.secrets["first_name"]
        for path, _ in gets:
            # an item path with each of our ids; a list as it is, searched by a name we wrote and filtered on
            # the out-of-scope community (what a filter or a count answers must not reveal it either)
            targets = [fill(path, i) for i in sorted(ids)] if "{" in path else [
                path, f"{path}?q={hardened.secrets['first_name']}", f"{path}?community_id={hardened.ids['community']}"]
            for target in targets:
                resp = client.get(target, headers=scoped)
                asked = set(re.findall(r"[0-9a-f-]{36}", target))
                body = resp.text
                for asked_id in asked:
                    body = body.replace(asked_id, "")  # a 404 may name what was asked for
                found = [i for i in ids if i in body] + [k for k, v in hardened.secrets.items() if v in body]
                if found or ("{" in path and resp.status_code < 300 and "/feedback/counts" not in path
                             and _has_items(resp)):
                    leaks.append((target, resp.status_code, found))
        # counts and summaries answer for the scope: a scoped count of feedback holds none of Ninewa's
        counts = client.get("/api/v1/feedback/counts", headers=scoped)
        if counts.status_code == 200:
            assert IN_SCOPE not in counts.text
    assert not leaks, leaks[:20]


def _has_items(resp: httpx.Response) -> bool:
    try:
        body = resp.json()
    except ValueError:
        return bool(resp.content)
    if isinstance(body, dict) and "items" in body:
        return bool(body["items"])
    return isinstance(body, dict) and "id" in body


# -- bad input -----------------------------------------------------------------------------------------------
def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        section, name = schema["$ref"].removeprefix("#/components/").split("/", 1)
        schema = spec["components"][section][name]
    return schema


def body_properties(spec: dict[str, Any], op: dict[str, Any]) -> list[str]:
    content = op.get("requestBody", {}).get("content", {})
    schema = resolve(spec, content.get("application/json", {}).get("schema", {}))
    return list(schema.get("properties", {}))


async def last_sequence(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(STREAM)).state.last_seq)
    finally:
        await nc.close()


def test_bad_input_on_every_write_is_a_clear_4xx_and_stores_nothing(hardened: Hardened) -> None:
    spec = hardened.spec
    writes = [(m, p, op) for m, p, op in protected(spec)
              if m in ("post", "put", "patch") and "application/json" in op.get("requestBody", {}).get("content", {})]
    assert {service_of(p) for _, p, _ in writes} >= set(catalog.built()) - {"indicators"}
    headers = auth("admin", "psea_focal_point")
    attack = "'; DROP TABLE beneficiaries; -- <script>alert(1)</script> \" OR 1=1 {{7*7}} ${jndi:x}"
    long = "ي" * 100_000
    deep = "[" * 50_000 + "]" * 50_000
    before = asyncio.run(last_sequence(hardened.nats_url))
    failures = []
    with httpx.Client(base_url=hardened.platform.url, timeout=60) as client:
        listed_before = client.get("/api/v1/beneficiaries", params={"limit": 500}, headers=headers).json()["items"]
        for method, path, op in writes:
            props = body_properties(spec, op)
            target = fill(path, hardened.ids["beneficiary"] if "beneficiar" in path else None)
            cases: dict[str, dict[str, Any]] = {
                "wrong content type": {"content": b'{"a": 1}', "headers": {"Content-Type": "text/plain"},
                                       "want": {415}},
                "form content type": {"content": b"a=1", "headers": {
                    "Content-Type": "application/x-www-form-urlencoded"}, "want": {415}},
                "invalid UTF-8": {"content": b'{"a": "\xff\xfe\xfd"}', "want": {400, 422}},
                "not JSON": {"content": b'{"a": ', "want": {400, 422}},
                "deep JSON": {"content": ('{"a": ' + deep + "}").encode(), "want": {400, 413, 422}},
                "oversized body": {"content": b'{"a": "' + b"x" * (11 * 1024 * 1024) + b'"}', "want": {413}},
                "array body": {"content": b"[1, 2, 3]", "want": {400, 422}},
                "number body": {"content": b"42", "want": {400, 422}},
                "null body": {"content": b"null", "want": {400, 422}},
            }
            if props:
                for name, value in (("very long strings", long), ("control characters", "a\x00b\x1bc"),
                                    ("SQL and script", attack), ("wrong types", {"nested": [1, 2]})):
                    cases[name] = {"content": json.dumps({p: value for p in props}).encode(), "want": {400, 409, 422}}
            for name, case in cases.items():
                kw_headers = {**headers, "Content-Type": "application/json", **case.get("headers", {})}
                resp = client.request(method.upper(), target, content=case["content"], headers=kw_headers)
                clear = resp.headers.get("content-type", "").startswith("application/problem+json") and \
                    resp.json().get("status") == resp.status_code and resp.json().get("detail")
                if resp.status_code not in case["want"] | {404} or not clear:
                    failures.append((method, path, name, resp.status_code, resp.text[:200]))
        listed_after = client.get("/api/v1/beneficiaries", params={"limit": 500}, headers=headers).json()["items"]
    assert not failures, sorted({f[:2] + f[3:] for f in failures})[:30]
    assert len(listed_after) == len(listed_before)
    assert asyncio.run(last_sequence(hardened.nats_url)) == before  # not one event: nothing was stored


# -- stream and logs -----------------------------------------------------------------------------------------
async def every_message(nats_url: str) -> list[tuple[str, bytes]]:
    """Every message of the stream (``crp.>``): its subject, and its headers and data, raw."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(STREAM)).state.last_seq
        found = []
        for seq in range(1, last + 1):
            msg = await js.get_msg(STREAM, seq)
            found.append((msg.subject or "", json.dumps(dict(msg.headers or {})).encode() + b" " + (msg.data or b"")))
        return found
    finally:
        await nc.close()


def test_no_personal_data_on_the_stream_or_in_any_log(hardened: Hardened) -> None:
    platform = hardened.platform
    with httpx.Client(base_url=platform.url, timeout=30, headers=auth("admin", "psea_focal_point")) as client:
        # read everything back once, and fail a few times on purpose, so the logs have had their chance
        for kind, path in (("beneficiary", "/api/v1/beneficiaries/{}"), ("grant", "/api/v1/grants/{}"),
                           ("feedback", "/api/v1/feedback/{}")):
            assert client.get(path.format(hardened.ids[kind])).status_code == 200
        dup = client.post("/api/v1/beneficiaries", json={
            "first_name": hardened.secrets["first_name"], "father_name": hardened.secrets["father_name"],
            "sex": "female", "date_of_birth": "1987-03-14", "displacement_status": "returnee",
            "phone": hardened.secrets["phone"], "national_id": hardened.secrets["national_id"],
            "community_id": hardened.ids["community"], "consent": {"given": True, "obtained_on": "2026-11-20"}})
        assert dup.status_code == 409, dup.text
    raw = asyncio.run(every_message(hardened.nats_url))
    subjects = {subject.split(".")[1] for subject, _ in raw}
    assert subjects >= set(catalog.built()) - {"indicators"}, subjects  # every producing service wrote events
    stream_text = b"\n".join(s.encode() + b" " + m for s, m in raw).decode("utf-8", errors="replace")
    logs = list((platform.data_dir / "logs").glob("*.log"))
    assert {p.stem for p in logs} >= {*catalog.built(), "gateway"}
    log_text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "beneficiaries" in log_text
    for where, text in (("stream", stream_text), ("logs", log_text)):
        for what, secret in hardened.secrets.items():
            assert secret not in text, (what, where)
        assert "1987-03-14" not in text, where
        assert hardened.secrets["phone"].replace(" ", "") not in text.replace(" ", ""), where


# -- erasure ---------------------------------------------------------------------------------------------------
def reconcile(platform: RunningPlatform) -> subprocess.CompletedProcess[str]:
    """`crp indicators reconcile` against the platform: exit 0 when the indicators equal the sources' truth."""
    return subprocess.run([*CRP, "indicators", "reconcile", "--url", platform.url, "--wait", "20"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_erasure_forgets_the_person_everywhere_and_keeps_the_counts(hardened: Hardened) -> None:
    platform = hardened.platform
    tag = uuid.uuid4().hex[:8]
    digits = f"{uuid.uuid4().int % 10**7:07d}"
    person = {"first_name": f"Rasha{tag}", "father_name": f"Karim{tag}", "grandfather_name": f"Fadhil{tag}",
              "phone": f"+964 782 {digits[:3]} {digits[3:]}", "national_id": f"ERASE-{tag}"}
    business, note = f"Rasha's Sewing Shop {tag}", f"The shop behind the mosque of {tag}"
    manager = auth("programme_manager")
    with httpx.Client(base_url=platform.url, headers=manager, timeout=30) as client:
        body = {**person, "sex": "female", "date_of_birth": "1990-06-21", "displacement_status": "idp",
                "community_id": hardened.ids["community"], "consent": {"given": True, "obtained_on": "2026-11-20"},
                "confirm_not_duplicate": True}
        registered = client.post("/api/v1/beneficiaries", json=body)
        assert registered.status_code == 201, registered.text
        pid = registered.json()["id"]
        grant = client.post("/api/v1/grants", json={"beneficiary_id": pid, "business_name": business,
                                                    "sector": "tailoring", "amount_requested": "800.00",
                                                    "currency": "USD"}).json()
        assert client.post(f"/api/v1/grants/{grant['id']}/approval",
                           json={"amount_approved": "800.00"}).status_code == 200
        paid = client.post(f"/api/v1/grants/{grant['id']}/disbursements", json={
            "amount": "800.00", "disbursed_on": time.strftime("%Y-%m-%d", time.gmtime())})
        assert paid.status_code == 201, paid.text
        visit = client.post(f"/api/v1/grants/{grant['id']}/monitoring-visits", json={
            "visited_on": time.strftime("%Y-%m-%d", time.gmtime()), "business_operating": True,
            "employees_female": 1, "employees_male": 0, "monthly_income_band": "under_250k", "notes": note,
            "latitude": 36.33, "longitude": 43.13})
        assert visit.status_code == 201, visit.text
        assert client.get(f"/api/v1/grants/{grant['id']}").json()["business_name"] == business

        # who may not erase is refused; the person's data is still there
        refused = client.post(f"/api/v1/beneficiaries/{pid}/erasure", json={"requested_on": "2026-11-25"},
                              headers=auth("case_worker"))
        assert refused.status_code == 403
        erased = client.post(f"/api/v1/beneficiaries/{pid}/erasure", json={"requested_on": "2026-11-25"})
        assert erased.status_code == 200, erased.text
        after = erased.json()
        assert after["erased_on"] == "2026-11-25"
        assert (after["first_name"], after["father_name"], after["grandfather_name"], after["phone"],
                after["has_national_id"], after["date_of_birth"]) == ("", "", None, None, False, "1990-01-01")
        assert (after["sex"], after["community_id"], after["consent"]["given"]) == ("female",
                                                                                  hardened.ids["community"], True)
        again = client.post(f"/api/v1/beneficiaries/{pid}/erasure", json={"requested_on": "2026-11-25"})
        assert again.status_code == 409  # irreversible and once: there is nothing left to erase
        assert client.get(f"/api/v1/grants/{grant['id']}").json()["business_name"] == "[erased]"
        visits = client.get(f"/api/v1/grants/{grant['id']}/monitoring-visits").json()
        visits = visits["items"] if isinstance(visits, dict) else visits
        assert visits and all(v.get("notes") is None and v.get("latitude") is None for v in visits)
        # nothing left to match on: the same person registered again is not a duplicate of the erased record
        again_body = {k: v for k, v in body.items() if k not in ("grandfather_name", "phone", "national_id")}
        back = client.post("/api/v1/beneficiaries", json={**again_body, "confirm_not_duplicate": False})
        assert back.status_code == 201, back.text
        everywhere = client.get(f"/api/v1/beneficiaries/{pid}").text + client.get(f"/api/v1/grants/{grant['id']}").text
        for value in (*person.values(), business, note):
            assert value not in everywhere

    # the indicators keep their anonymous counts: they equal the truth recomputed from the services' records
    result = reconcile(platform)
    assert result.returncode == 0, result.stdout + result.stderr

    # audited (who, when, which fields), and the audit log itself holds no personal data
    db = sqlite3.connect(platform.data_dir / "beneficiaries.db")
    try:
        rows = db.execute("SELECT action, actor, fields FROM audit_log WHERE entity_id = ?", (pid,)).fetchall()
        audit_text = json.dumps(db.execute("SELECT * FROM audit_log").fetchall(), default=str)
    finally:
        db.close()
    assert any(action == "erased_request" and "phone" in json.loads(fields) for action, _, fields in rows), rows
    gdb = sqlite3.connect(platform.data_dir / "grants.db")
    try:
        assert gdb.execute("SELECT count(*) FROM audit_log WHERE entity_id = ? AND action = 'erased_request'",
                           (grant["id"],)).fetchone()[0] == 1
        audit_text += json.dumps(gdb.execute("SELECT * FROM audit_log").fetchall(), default=str)
    finally:
        gdb.close()
    for value in (*person.values(), business, note):
        assert value not in audit_text
    # the erased values are gone from the database files themselves, not just from the API (SQLite's
    # secure_delete overwrites them; the WAL's older frames go at its next checkpoint, done here)
    for name in ("beneficiaries", "grants"):
        checkpoint = sqlite3.connect(platform.data_dir / f"{name}.db")
        checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        checkpoint.close()
        stored = b"".join(p.read_bytes() for p in platform.data_dir.glob(f"{name}.db*"))
        for value in (person["grandfather_name"], person["phone"], business, note):  # (the names are back)
            assert value.encode() not in stored, (name, value)
    nc_events = asyncio.run(every_message(hardened.nats_url))
    events = [json.loads(m[m.index(b"} ") + 2:]) for subject, m in nc_events
              if subject.startswith("crp.beneficiaries.beneficiary.erased")]
    assert [e["data"] for e in events if e["data"]["beneficiary_id"] == pid] == [
        {"beneficiary_id": pid, "revision": after["version"], "reason": "request"}]


# -- fuzzing (last: it leaves generated records behind) -------------------------------------------------------
def test_fuzz_the_merged_openapi_with_several_roles(hardened: Hardened) -> None:
    """schemathesis through the gateway: no 5xx, responses match their documented schemas; a few examples per
    operation here (`make fuzz` runs many more, with the coverage phase)."""
    from bench.fuzz import fuzz

    ok, lines = fuzz(hardened.platform.url, examples=2, profiles=["admin"])
    print("\n" + "\n".join(lines))
    assert ok, "\n".join(lines)
    assert all(" cases: " in line for line in lines if line.startswith("fuzz "))
