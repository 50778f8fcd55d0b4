"""Nationwide duplicate detection and the duplicate review queue (SQLite and PostgreSQL, real NATS).

A returnee registered in a camp in one governorate and again at home in another is found; a scoped caller
learns that a probable duplicate exists without seeing it; confirmed pairs wait for a programme manager,
who marks them distinct (never flagged again) or merges them with the one merge operation.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import insert, select, text

from services.beneficiaries import service as svc
from services.beneficiaries.app import create_app, service
from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.matching import DUPLICATE_THRESHOLD, KNOWN_NAMES, PersonName, blocking_key, compare
from services.beneficiaries.models import Beneficiary, DuplicateReview
from shared.audit import AuditEntry
from shared.db import create_engine, utcnow
from shared.migrations import alembic_config
from tests.beneficiaries.test_api import assert_problem, community, person
from tests.beneficiaries.test_concurrency import events_of
from tests.conftest import Env, running

ROOT = Path(__file__).resolve().parents[2]
NINEWA, ANBAR, BASRAH = "IQG15Q05", "IQG01Q01", "IQG02Q01"  # Al-Mosul, Al-Falluja/Ramadi side, Basrah
RACERS = 8


@pytest.fixture
async def api(env: Env) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(env.settings(BeneficiariesSettings))
    async with running(app) as client:
        yield client, app


async def scoped_community(client: httpx.AsyncClient, env: Env, district: str) -> str:
    resp = await client.post("/api/v1/communities", json={"name": f"C {district}", "district_pcode": district},
                             headers=env.token("case_worker"))
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def reviews(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/v1/duplicate-reviews", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


# -- the blocking key -----------------------------------------------------------------------------------------

def test_blocking_key_keeps_every_pair_that_compare_flags() -> None:
    """Whatever compare scores as a probable duplicate shares its block: the index loses no catch."""
    groups = [[c, a, *v.split()] for c, a, v in KNOWN_NAMES] + [
        ["Majed", "Majid", "ماجد"], ["Hashem", "Hashim", "هاشم"], ["ثامر", "Thamir", "Thamer"],
        ["وسام", "Wisam", "Wissam", "Wesam"], ["Yaser", "ياسر", "Yasser"], ["Abd al-Amir", "Abdulameer", "عبد الامير"],
        ["Nour al-Din", "نور الدين", "Nuruddin"], ["Wael", "وائل", "Wail"], ["Qais", "قيس", "Kais", "Qays"],
        ["Saif", "سيف", "Seif", "Sayf"], ["Uday", "عدي", "Odai"], ["Aya", "آية", "Ayah"]]
    rng = random.Random(20261129)
    flagged = 0
    for _ in range(20000):
        first, father = rng.choice(groups), rng.choice(groups)
        a = PersonName(rng.choice(first), rng.choice(father), rng.choice([None, "حسن", "Hassan"]))
        b = PersonName(rng.choice(first), rng.choice(father), rng.choice([None, "حسن", "Hasan", "حسين"]))
        if compare(a, b).score >= DUPLICATE_THRESHOLD:
            flagged += 1
            assert blocking_key(a) == blocking_key(b), (a, b)
    assert flagged > 10000  # the check above was really exercised


def test_blocking_key_is_script_independent_and_separates_names() -> None:
    assert blocking_key(PersonName("أحمد", "علي")) == blocking_key(PersonName("Ahmed", "Ali"))
    assert blocking_key(PersonName("عبد الرحمن", "ثامر")) == blocking_key(PersonName("Abdulrahman", "Thamir"))
    assert blocking_key(PersonName("محمد", "علي")) != blocking_key(PersonName("حسن", "علي"))
    # A block may hold names that compare then tells apart (محمد / محمود share their consonants).
    assert blocking_key(PersonName("محمد", "علي")) == blocking_key(PersonName("محمود", "علي"))
    assert blocking_key(PersonName("Ali", "Hassan")) != blocking_key(PersonName("Hassan", "Ali"))
    assert len(blocking_key(PersonName("x" * 100 + "b" * 100, "c" * 100))) <= 80


# -- nationwide detection and the scoped caller -----------------------------------------------------------------

async def test_same_person_registered_in_another_governorate_is_found(api: Any, env: Env) -> None:
    client, _ = api
    national = env.token("case_worker")
    camp = await scoped_community(client, env, NINEWA)
    first = await client.post("/api/v1/beneficiaries", headers=national, json=person(camp))
    assert first.status_code == 201
    # Back home in Basrah, typed in Latin script by another team.
    home = await scoped_community(client, env, BASRAH)
    again = person(home, first_name="Ahmed", father_name="Ali", grandfather_name="Hasan", date_of_birth="1988-11-30")
    body = assert_problem(await client.post("/api/v1/beneficiaries", headers=national, json=again), 409)
    assert [c["id"] for c in body["candidates"]] == [first.json()["id"]] and body["candidates_outside_scope"] == 0
    assert any("known transliteration" in r for r in body["candidates"][0]["reasons"])
    # A brother (another first name), or the same names born another year, are other people.
    brother = person(home, first_name="Mohammed", father_name="Ali", grandfather_name="Hasan")
    assert (await client.post("/api/v1/beneficiaries", headers=national, json=brother)).status_code == 201
    other_year = person(home, first_name="Ahmed", father_name="Ali", date_of_birth="1991-01-01")
    assert (await client.post("/api/v1/beneficiaries", headers=national, json=other_year)).status_code == 201


async def test_scoped_caller_is_told_without_seeing_the_record(api: Any, env: Env) -> None:
    client, app = api
    ninewa_id = (await client.post("/api/v1/beneficiaries", headers=env.token("case_worker"),
                                   json=person(await scoped_community(client, env, NINEWA), phone="+9647701234567"))
                 ).json()["id"]
    anbar = env.token("case_worker", governorates=("IQG01",))
    anbar_community = await scoped_community(client, env, ANBAR)
    again = person(anbar_community, first_name="احمد")
    resp = await client.post("/api/v1/beneficiaries", headers=anbar, json=again)
    body = assert_problem(resp, 409)
    assert body["type"] == "urn:crp:problem:probable-duplicate"
    assert body["candidates"] == [] and body["candidates_outside_scope"] == 1
    for secret in (ninewa_id, "أحمد", "IQG15", "7701234567", "Mosul"):
        assert secret not in resp.text
    # Confirmed, it registers, and the pair waits for a programme manager who sees both governorates.
    confirmed = await client.post("/api/v1/beneficiaries", headers=anbar, json={**again, "confirm_not_duplicate": True})
    assert confirmed.status_code == 201, confirmed.text
    [review] = await reviews(client, env.token("programme_manager"))
    assert {review["beneficiary"]["id"], review["candidate"]["id"]} == {confirmed.json()["id"], ninewa_id}
    assert review["source"] == "registration" and "registered in another governorate" in review["reasons"]
    # A programme manager scoped to Anbar sees neither the pair nor its figures.
    anbar_manager = env.token("programme_manager", governorates=("IQG01",))
    assert await reviews(client, anbar_manager) == []
    assert_problem(await client.get(f"/api/v1/duplicate-reviews/{review['id']}", headers=anbar_manager), 404)
    assert_problem(await client.post(f"/api/v1/duplicate-reviews/{review['id']}/decision", headers=anbar_manager,
                                     json={"decision": "distinct"}), 404)
    summary = (await client.get("/api/v1/duplicate-reviews/summary", headers=anbar_manager)).json()
    assert summary["open"] == 0
    assert (await client.get("/api/v1/duplicate-reviews/summary",
                             headers=env.token("programme_manager"))).json()["open"] == 1


async def test_the_blocks_of_a_batch_are_one_statement_of_index_lookups(api: Any, env: Env) -> None:
    """A batch's (blocking key, birth year) pairs are read in one statement whose text does not depend on how many
    there are (compiled once, not per batch), each pair looked up in the index: exactly the registry's people of
    those blocks, merged records left out, for one pair as for 700."""
    client, app = api
    headers = env.token("case_worker")
    cid = await community(client, env)
    made = {}
    for first, born in (("Yusuf", "1970-01-02"), ("Yusuf", "1971-03-04"), ("Maryam", "1970-05-06")):
        resp = await client.post("/api/v1/beneficiaries", headers=headers, json=person(
            cid, first_name=first, father_name="Khalil", grandfather_name=None, date_of_birth=born,
            confirm_not_duplicate=True))
        assert resp.status_code == 201, resp.text
        made[(first, born[:4])] = resp.json()["id"]
    yusuf = blocking_key(PersonName("Yusuf", "Khalil"))
    others = {(f"zz{i:04d}", 1900 + i % 100) for i in range(700)}
    async with app.state.sessionmaker() as session:
        one = await svc._blocks(session, {(yusuf, 1970)})
        many = await svc._blocks(session, {(yusuf, 1970), (yusuf, 1971), (yusuf, 1972)} | others)
        if env.backend == "sqlite":
            plan = " / ".join(row[-1] for row in (await session.execute(
                text(f"EXPLAIN QUERY PLAN {svc._blocks_json.text}"), {"pairs": "[]"})).all())
            assert plan.startswith("SCAN blocks") and "USING INDEX ix_beneficiaries_blocking_key" in plan, plan
    assert {k: [r.id for r in v] for k, v in one.items()} == {(yusuf, 1970): [made[("Yusuf", "1970")]]}
    assert {k: [r.id for r in v] for k, v in many.items()} == {(yusuf, 1970): [made[("Yusuf", "1970")]],
                                                               (yusuf, 1971): [made[("Yusuf", "1971")]]}
    row = many[(yusuf, 1970)][0]
    assert (row.first_name, row.father_name, row.governorate_pcode) == ("Yusuf", "Khalil", "IQG15")


# -- the review queue -----------------------------------------------------------------------------------------

async def confirmed_pair(client: httpx.AsyncClient, env: Env) -> tuple[str, str, dict[str, Any]]:
    headers = env.token("case_worker")
    first = (await client.post("/api/v1/beneficiaries", headers=headers,
                               json=person(await scoped_community(client, env, NINEWA), national_id="1987-1111"))
             ).json()["id"]
    second = (await client.post("/api/v1/beneficiaries", headers=headers, json=person(
        await scoped_community(client, env, ANBAR), first_name="Ahmad", confirm_not_duplicate=True))).json()["id"]
    [review] = await reviews(client, env.token("programme_manager"))
    return first, second, review


async def test_review_queue_auth_and_bad_input(api: Any, env: Env) -> None:
    client, _ = api
    _, _, review = await confirmed_pair(client, env)
    url = f"/api/v1/duplicate-reviews/{review['id']}/decision"
    manager = env.token("programme_manager")
    assert_problem(await client.get("/api/v1/duplicate-reviews"), 401)
    assert_problem(await client.get("/api/v1/duplicate-reviews", headers=env.token("case_worker")), 403)
    assert_problem(await client.post(url, json={"decision": "distinct"}, headers=env.token("case_worker")), 403)
    assert_problem(await client.post("/api/v1/duplicate-reviews/rescan", headers=manager), 403)
    assert_problem(await client.post(url, json={"decision": "merge"}, headers=manager), 422)
    assert_problem(await client.post(url, json={"decision": "distinct", "survivor_id": "x"}, headers=manager), 422)
    assert_problem(await client.post(url, json={"decision": "maybe"}, headers=manager), 422)
    body = assert_problem(await client.post(url, json={"decision": "merge", "survivor_id": str(uuid.uuid4())},
                                            headers=manager), 422)
    assert body["errors"][0]["loc"] == ["body", "survivor_id"]
    assert_problem(await client.get("/api/v1/duplicate-reviews?status=nope", headers=manager), 422)
    assert_problem(await client.get(f"/api/v1/duplicate-reviews/{uuid.uuid4()}", headers=manager), 404)
    assert (await reviews(client, manager))[0]["status"] == "open"  # nothing above decided it


async def test_distinct_is_never_flagged_again_and_is_audited(api: Any, env: Env) -> None:
    client, app = api
    first, second, review = await confirmed_pair(client, env)
    manager = env.token("programme_manager", sub="pm-1")
    url = f"/api/v1/duplicate-reviews/{review['id']}/decision"
    decided = await client.post(url, json={"decision": "distinct"}, headers=manager)
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "distinct" and decided.json()["decided_by"] == "pm-1"
    assert_problem(await client.post(url, json={"decision": "distinct"}, headers=manager), 409)
    assert await reviews(client, manager) == []
    assert [r["id"] for r in await reviews(client, manager, status="distinct")] == [review["id"]]
    # A rescan (and a correction of a name) finds the pair again but does not reopen it.
    admin = env.token("admin")
    rescan = (await client.post("/api/v1/duplicate-reviews/rescan", headers=admin)).json()
    assert rescan["reviews_added"] == 0 and rescan["people"] == 2
    record = (await client.get(f"/api/v1/beneficiaries/{second}", headers=manager))
    patched = await client.patch(f"/api/v1/beneficiaries/{second}", json={"first_name": "Ahmed"},
                                 headers={**manager, "If-Match": record.headers["etag"]})
    assert patched.status_code == 200
    assert await reviews(client, manager) == []
    summary = (await client.get("/api/v1/duplicate-reviews/summary", headers=manager)).json()
    assert summary["open"] == 0 and summary["decided"] == summary["distinct"] == 1
    assert summary["median_decision_seconds"] is not None and summary["median_open_age_seconds"] is None
    async with app.state.sessionmaker() as session:
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.entity_id == review["id"]))).scalars()
        assert [(e.actor, e.action) for e in entries] == [("pm-1", "decided_distinct")]
    assert 'crp_duplicate_reviews_decided_total{decision="distinct"}' in (await client.get("/metrics")).text


async def test_merge_from_the_queue_is_the_merge_operation(api: Any, env: Env) -> None:
    client, app = api
    first, second, review = await confirmed_pair(client, env)
    manager = env.token("programme_manager")
    resp = await client.post(f"/api/v1/duplicate-reviews/{review['id']}/decision", headers=manager,
                             json={"decision": "merge", "survivor_id": second})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "merged" and resp.json()["survivor_id"] == second
    merged = (await client.get(f"/api/v1/beneficiaries/{first}", headers=manager)).json()
    assert merged["merged_into_id"] == second
    survivor = (await client.get(f"/api/v1/beneficiaries/{second}", headers=manager)).json()
    assert survivor["has_national_id"] is True  # the merge's rules: the national ID moves to the survivor
    assert len(await events_of(app, second, ".beneficiary.merged.v1")) == 1
    summary = (await client.get("/api/v1/duplicate-reviews/summary", headers=manager)).json()
    assert summary["merged"] == 1 and summary["open"] == 0


async def test_a_review_decided_twice_at_once_is_decided_once(api: Any, env: Env) -> None:
    client, app = api
    first, second, review = await confirmed_pair(client, env)
    url = f"/api/v1/duplicate-reviews/{review['id']}/decision"
    bodies = [{"decision": "merge", "survivor_id": (first, second)[i % 2]} if i % 3 else {"decision": "distinct"}
              for i in range(RACERS)]
    results = await asyncio.gather(*(client.post(url, json=b, headers=env.token("programme_manager"))
                                     for b in bodies))
    assert sorted(r.status_code for r in results) == [200] + [409] * (RACERS - 1), [r.text for r in results]
    for loser in (r for r in results if r.status_code != 200):
        assert_problem(loser, 409)
    winner = next(r for r in results if r.status_code == 200).json()
    merges = await events_of(app, first, ".beneficiary.merged.v1") + await events_of(app, second,
                                                                                     ".beneficiary.merged.v1")
    assert len(merges) == (1 if winner["status"] == "merged" else 0)


async def test_the_same_person_registered_at_once_in_two_governorates_is_registered_once(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    places = [await scoped_community(client, env, d) for d in (NINEWA, ANBAR, BASRAH, "IQG15Q01")]
    spellings = ["أحمد", "احمد", "Ahmed", "Ahmad"]
    results = await asyncio.gather(*(client.post("/api/v1/beneficiaries", headers=headers, json=person(
        places[i % len(places)], first_name=spellings[i % len(spellings)])) for i in range(RACERS)))
    assert sorted(r.status_code for r in results) == [201] + [409] * (RACERS - 1), [r.text for r in results]
    async with app.state.sessionmaker() as session:
        assert len((await session.execute(select(Beneficiary))).scalars().all()) == 1


# -- the nationwide rescan and the migration ------------------------------------------------------------------

def seeded_row(name: PersonName, born: date, community_id: str, key: str) -> dict[str, Any]:
    now = utcnow()
    return dict(id=str(uuid.uuid4()), first_name=name.first_name, father_name=name.father_name,
                grandfather_name=name.grandfather_name, family_name=None, search_key="", blocking_key=key,
                sex="male", date_of_birth=born, birth_year=born.year, displacement_status="idp",
                community_id=community_id, district_pcode=NINEWA, governorate_pcode="IQG15",
                consent_obtained_on=date(2026, 1, 1), created_at=now, updated_at=now, version=1)


def crp(settings: BeneficiariesSettings, *argv: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRP_")}
    environ.update(CRP_DATABASE_URL=settings.database_url or "")
    if settings.database_schema:
        environ["CRP_DATABASE_SCHEMA"] = settings.database_schema
    return subprocess.run([sys.executable, "-m", "services.cli", *argv], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=120)


async def test_rescan_recomputes_keys_fills_the_queue_and_is_idempotent(env: Env) -> None:
    settings = env.settings(BeneficiariesSettings)
    app = create_app(settings)
    async with running(app) as client:
        community_id = await community(client, env)
        # Written under older rules (a stale key): the same person twice, and someone else.
        rows = [seeded_row(PersonName("Mohammed", "Kadhim", "Jasim"), date(1979, 5, 1), community_id, "old"),
                seeded_row(PersonName("محمد", "كاظم"), date(1979, 8, 9), community_id, "older"),
                seeded_row(PersonName("Mohammed", "Kareem"), date(1979, 5, 1), community_id, "old")]
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(insert(Beneficiary), rows)
    first = crp(settings, "beneficiaries", "rescan")
    assert first.returncode == 0, first.stderr
    assert "3 people rescanned, 3 blocking keys recomputed" in first.stdout and "1 probable duplicates" in first.stdout
    again = crp(settings, "beneficiaries", "rescan")
    assert again.returncode == 0 and "0 blocking keys recomputed" in again.stdout, again.stdout
    assert "0 probable duplicates added" in again.stdout
    async with running(create_app(settings)) as client:
        [review] = await reviews(client, env.token("programme_manager"))
        assert review["source"] == "rescan"
        assert {review["beneficiary"]["id"], review["candidate"]["id"]} == {rows[0]["id"], rows[1]["id"]}


async def test_migration_backfills_blocking_keys(env: Env) -> None:
    settings = env.settings(BeneficiariesSettings)
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            if settings.schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.schema}"'))
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(service.versions, connection=sync), "0002"))
            await conn.execute(text("INSERT INTO communities (id, name, district_pcode, governorate_pcode, created_at) "
                                    "VALUES ('c1', 'C', 'IQG15Q05', 'IQG15', CURRENT_TIMESTAMP)"))
            await conn.execute(text(
                "INSERT INTO beneficiaries (id, first_name, father_name, search_key, sex, date_of_birth, birth_year, "
                "displacement_status, community_id, district_pcode, governorate_pcode, consent_obtained_on, version, "
                "created_at, updated_at) VALUES ('b1', 'عبد الله', 'ثامر', '', 'male', '1990-01-01', 1990, 'idp', "
                "'c1', 'IQG15Q05', 'IQG15', '2026-01-01', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        await service.migrate(engine, settings)
        async with engine.connect() as conn:
            key = (await conn.execute(text("SELECT blocking_key FROM beneficiaries WHERE id = 'b1'"))).scalar_one()
        assert key == blocking_key(PersonName("Abdullah", "Thamir")) != ""
    finally:
        await engine.dispose()


def test_reviews_hold_no_names() -> None:
    """The queue stores ids, a score and where the pair came from: names stay on the records only."""
    columns = set(DuplicateReview.__table__.columns.keys())  # type: ignore[attr-defined]
    assert not columns & {"first_name", "father_name", "reasons", "name"}, columns
    assert json.dumps(sorted(columns))  # (listed for the reader)
