"""KoboToolbox intake against a local fake Kobo server (a real HTTP server) serving the v2 data API's shape."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from sqlalchemy import select

from services.beneficiaries.app import create_app
from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.kobo.models import KoboSource
from services.beneficiaries.models import Beneficiary
from tests.beneficiaries.test_api import assert_problem, community, count
from tests.beneficiaries.test_imports import finished, report
from tests.conftest import Env, eventually, running

ASSET = "aXk9QwErTy12"
TOKEN = "kobo-token-1234567890"


class FakeKobo:
    """`GET /api/v2/assets/{uid}/data/`: token auth, a `query` on `_submission_time` (`$gt`), sorted, two
    results a page with an absolute `next`, submissions with `_id`, `_uuid`, `group/field` keys and a repeat
    group (an array of objects)."""

    def __init__(self) -> None:
        self.submissions: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.ignore_query = False
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def add(self, n: int, time: str, first: str, father: str, sex: str, dob: str) -> None:
        self.submissions.append({
            "_id": 1000 + n, "_uuid": f"0c7f6a2e-0000-4000-8000-{n:012d}", "_submission_time": time,
            "formhub/uuid": "f00dfeed", "start": time, "end": time, "__version__": "vA1",
            "group_hh/first_name": first, "group_hh/father_name": father, "group_hh/sex": sex,
            "group_hh/dob": dob, "group_status/displacement": "idp", "consent_given": "true",
            "today": "2026-11-01", "_attachments": [], "_geolocation": [36.34, 43.13], "_status": "submitted_via_web",
            "group_hh/members": [{"group_hh/members/member_name": "not imported", "group_hh/members/age": "7"}],
        })

    async def data(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Token {TOKEN}":
            return web.json_response({"detail": "Invalid token."}, status=401)
        if request.match_info["uid"] != ASSET:
            return web.json_response({"detail": "Not found."}, status=404)
        self.requests.append(dict(request.query))
        rows = sorted(self.submissions, key=lambda s: s["_submission_time"])
        if "query" in request.query and not self.ignore_query:
            after = json.loads(request.query["query"])["_submission_time"]["$gt"]
            rows = [r for r in rows if r["_submission_time"] > after]
        start = int(request.query.get("start", 0))
        page = rows[start:start + 2]
        more = start + 2 < len(rows)
        nxt = None
        if more:
            query = {k: v for k, v in request.query.items() if k != "start"}
            nxt = str(request.url.with_query({**query, "start": str(start + 2)}))
        return web.json_response({"count": len(rows), "next": nxt, "previous": None, "results": page})


@pytest.fixture
async def kobo() -> AsyncIterator[FakeKobo]:
    fake = FakeKobo()
    app = web.Application()
    app.router.add_get("/api/v2/assets/{uid}/data/", fake.data)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", fake.port).start()
    yield fake
    await runner.cleanup()


@pytest.fixture
async def api(env: Env) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(env.settings(BeneficiariesSettings, kobo_poll_seconds=0.2))
    async with running(app) as client:
        yield client, app


MAPPING = {"group_hh/first_name": "first_name", "group_hh/father_name": "father_name", "group_hh/sex": "sex",
           "group_hh/dob": "date_of_birth", "group_status/displacement": "displacement_status",
           "consent_given": "consent.given", "today": "consent.obtained_on"}


async def pulls(client: httpx.AsyncClient, env: Env, source_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/v1/beneficiaries/kobo-sources/{source_id}/pulls",
                            headers=env.token("programme_manager"))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_incremental_pull_imports_only_new_submissions(api: Any, env: Env, kobo: FakeKobo) -> None:
    client, app = api
    cid = await community(client, env)
    kobo.add(1, "2026-11-20T08:00:01", "Zainab", "Kareem", "female", "1990-02-03")
    kobo.add(2, "2026-11-20T09:30:00", "Omar", "Salim", "male", "1985-06-07")
    kobo.add(3, "2026-11-21T10:00:00", "Huda", "Jabbar", "female", "2001-01-01")
    manager = env.token("programme_manager")
    resp = await client.post("/api/v1/beneficiaries/kobo-sources", headers=manager, json={
        "name": "Mosul household survey", "server_url": kobo.url, "token": TOKEN, "asset_uid": ASSET,
        "mapping": MAPPING, "defaults": {"community_id": cid}, "pull_interval_minutes": 600})
    assert resp.status_code == 201, resp.text
    source = resp.json()
    assert "token" not in source

    # The first pull happens at once: three submissions across two pages, one import job.
    [first] = await eventually(lambda: pulls(client, env, source["id"]), timeout=20)
    assert (first["status"], first["submissions"], first["imported"], first["already_known"]) == ("succeeded", 3, 3, 0)
    job = await finished(client, env, first["import_id"], role="programme_manager")
    assert job["created_rows"] == 3 and job["total_rows"] == 3
    assert "query" not in kobo.requests[0] and kobo.requests[1]["start"] == "2"  # all, then `next`
    async with app.state.sessionmaker() as session:
        names = set((await session.execute(select(Beneficiary.first_name))).scalars())
        stored = (await session.execute(select(KoboSource.token))).scalar_one()
    assert names == {"Zainab", "Omar", "Huda"} and TOKEN not in stored  # repeat groups are not people

    # New submissions: the next pull asks only for later ones and imports only those.
    kobo.add(4, "2026-11-22T07:00:00", "Sara", "Ali", "female", "1999-09-09")
    kobo.add(5, "2026-11-22T07:05:00", "Zaynab", "Karim", "female", "1990-05-05")  # probable duplicate of 1
    resp = await client.post(f"/api/v1/beneficiaries/kobo-sources/{source['id']}/pulls", headers=manager)
    assert resp.status_code == 202
    latest = await eventually(lambda: _second(client, env, source["id"]), timeout=20)
    assert (latest["submissions"], latest["imported"], latest["already_known"]) == (2, 2, 0)
    assert json.loads(kobo.requests[-1]["query"]) == {"_submission_time": {"$gt": "2026-11-21T10:00:00"}}
    job = await finished(client, env, latest["import_id"], role="programme_manager")
    assert (job["created_rows"], job["duplicate_rows"]) == (1, 1)
    rows = await report(client, env, latest["import_id"])
    assert rows[1]["status"] == "duplicate" and rows[1]["candidates"]
    assert await count(app, Beneficiary) == 4

    # Idempotent on `_uuid`: a server that sends everything again imports nothing twice.
    kobo.ignore_query = True
    await client.post(f"/api/v1/beneficiaries/kobo-sources/{source['id']}/pulls", headers=manager)
    third = await eventually(lambda: _nth(client, env, source["id"], 3), timeout=20)
    assert (third["submissions"], third["imported"], third["already_known"], third["import_id"]) == (5, 0, 5, None)
    assert await count(app, Beneficiary) == 4


async def _second(client: httpx.AsyncClient, env: Env, source_id: str) -> dict[str, Any] | None:
    return await _nth(client, env, source_id, 2)


async def _nth(client: httpx.AsyncClient, env: Env, source_id: str, n: int) -> dict[str, Any] | None:
    got = await pulls(client, env, source_id)
    return got[0] if len(got) >= n else None


async def test_failed_pull_is_recorded_and_bad_input_refused(api: Any, env: Env, kobo: FakeKobo) -> None:
    client, _ = api
    manager = env.token("programme_manager")
    body = {"name": "wrong token", "server_url": kobo.url, "token": "not-the-token", "asset_uid": ASSET,
            "mapping": MAPPING}
    assert_problem(await client.post("/api/v1/beneficiaries/kobo-sources", json=body), 401)
    assert_problem(await client.post("/api/v1/beneficiaries/kobo-sources", json=body,
                                     headers=env.token("case_worker")), 403)
    for bad in ({"server_url": "nope"}, {"asset_uid": "a/b"}, {"mapping": {}},
                {"mapping": {"group_hh/x": "password"}}, {"pull_interval_minutes": 0}):
        assert_problem(await client.post("/api/v1/beneficiaries/kobo-sources", json={**body, **bad},
                                         headers=manager), 422)
    assert_problem(await client.get("/api/v1/beneficiaries/kobo-sources/nope", headers=manager), 404)
    resp = await client.post("/api/v1/beneficiaries/kobo-sources", json=body, headers=manager)
    assert resp.status_code == 201
    [pull] = await eventually(lambda: pulls(client, env, resp.json()["id"]), timeout=20)
    assert pull["status"] == "failed" and pull["error"] == "Kobo answered HTTP 401" and pull["imported"] == 0
    other = env.token("programme_manager", sub="elsewhere", governorates=("IQG02",))
    assert_problem(await client.get(f"/api/v1/beneficiaries/kobo-sources/{resp.json()['id']}", headers=other), 404)
