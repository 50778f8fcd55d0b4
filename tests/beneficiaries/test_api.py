"""The beneficiaries service over HTTP: auth, scope, validation, duplicates, idempotency, ETags, merge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from services.beneficiaries.app import create_app
from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.models import Beneficiary
from shared.audit import AuditEntry
from shared.outbox import OutboxMessage
from tests.conftest import Env, running

PROBLEM = "application/problem+json"


@pytest.fixture
async def api(env: Env) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(env.settings(BeneficiariesSettings))
    async with running(app) as client:
        yield client, app


def person(community_id: str, **overrides: Any) -> dict[str, Any]:
    body = {"first_name": "أحمد", "father_name": "علي", "grandfather_name": "حسن", "sex": "male",
            "date_of_birth": "1988-04-02", "displacement_status": "returnee", "community_id": community_id,
            "consent": {"given": True, "obtained_on": "2026-11-01"}}
    body.update(overrides)
    return body


async def community(client: httpx.AsyncClient, env: Env, district: str = "IQG15Q05") -> str:
    resp = await client.post("/api/v1/communities", json={"name": "Hamdaniya centre", "district_pcode": district},
                             headers=env.token("case_worker"))
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def assert_problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["status"] == status and body["title"] and body["type"] and "detail" in body
    assert "Traceback" not in resp.text
    return body


async def count(app: Any, model: Any) -> int:
    async with app.state.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_locations_gazetteer(api: Any, env: Env) -> None:
    client, _ = api
    resp = await client.get("/api/v1/locations/governorates", headers=env.token("viewer"))
    governorates = resp.json()
    assert len(governorates) == 18 and {"pcode": "IQG15", "name_en": "Ninewa"} in governorates
    resp = await client.get("/api/v1/locations/districts?governorate=IQG15", headers=env.token("viewer"))
    assert {"pcode": "IQG15Q05", "name_en": "Al-Mosul", "parent_pcode": "IQG15"} in resp.json()
    assert_problem(await client.get("/api/v1/locations/districts?governorate=XX1", headers=env.token("viewer")), 422)


async def test_no_token_bad_token_wrong_role(api: Any, env: Env) -> None:
    client, _ = api
    body = assert_problem(await client.get("/api/v1/beneficiaries"), 401)
    assert body["type"] == "urn:crp:problem:unauthorized"
    assert_problem(await client.get("/api/v1/beneficiaries", headers={"Authorization": "Bearer nonsense"}), 401)
    import jwt
    unsigned = jwt.encode({"sub": "x", "roles": ["admin"], "governorates": ["*"], "exp": 9999999999,
                           "iss": "crp-dev", "aud": "crp-api"}, key=None, algorithm="none")
    assert_problem(await client.get("/api/v1/beneficiaries", headers={"Authorization": f"Bearer {unsigned}"}), 401)
    assert_problem(await client.get("/api/v1/beneficiaries", headers=env.token("viewer")), 403)
    assert_problem(await client.post("/api/v1/beneficiaries", json={}, headers=env.token("me_officer")), 403)


async def test_bad_input_is_problem_json(api: Any, env: Env) -> None:
    client, _ = api
    headers = env.token("case_worker")
    body = assert_problem(await client.post("/api/v1/communities", json={"name": "X", "district_pcode": "IQG99Q01"},
                                            headers=headers), 422)
    assert body["errors"][0]["loc"] == ["body", "district_pcode"]
    community_id = await community(client, env)
    no_consent = person(community_id)
    del no_consent["consent"]
    body = assert_problem(await client.post("/api/v1/beneficiaries", json=no_consent, headers=headers), 422)
    assert any(e["loc"][-1] == "consent" for e in body["errors"])
    refused = person(community_id, consent={"given": False, "obtained_on": "2026-11-01"})
    assert_problem(await client.post("/api/v1/beneficiaries", json=refused, headers=headers), 422)
    bad = person(community_id, sex="x", date_of_birth="3000-01-01", disability={"seeing": 7})
    body = assert_problem(await client.post("/api/v1/beneficiaries", json=bad, headers=headers), 422)
    assert {e["loc"][-1] for e in body["errors"]} >= {"sex", "date_of_birth"}
    assert_problem(await client.post("/api/v1/beneficiaries", json=person("no-such-community"), headers=headers), 422)
    assert_problem(await client.post("/api/v1/beneficiaries", content=b"{not json",
                                     headers={**headers, "content-type": "application/json"}), 422)
    assert_problem(await client.get("/api/v1/nowhere", headers=headers), 404)
    assert_problem(await client.get("/api/v1/beneficiaries/does-not-exist", headers=headers), 404)


async def test_register_get_and_audit(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker", sub="clerk-7")
    community_id = await community(client, env)
    resp = await client.post("/api/v1/beneficiaries", headers=headers, json=person(
        community_id, phone="+964 770 123 4567", national_id="1987-445566",
        disability={"seeing": 1, "hearing": 1, "walking": 3, "cognition": 1, "self_care": 1, "communication": 1}))
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["governorate_pcode"] == "IQG15" and created["district_pcode"] == "IQG15Q05"
    assert created["has_national_id"] is True and "national_id" not in created
    assert resp.headers["etag"] and resp.headers["location"].endswith(created["id"])
    got = await client.get(f"/api/v1/beneficiaries/{created['id']}", headers=headers)
    assert got.status_code == 200 and got.json()["first_name"] == "أحمد"
    async with app.state.sessionmaker() as session:
        stored = await session.get(Beneficiary, created["id"])
        assert stored.national_id_hash and "445566" not in stored.national_id_hash
        entries = (await session.execute(select(AuditEntry).where(AuditEntry.entity_id == created["id"]))).scalars()
        entry = entries.one()
        assert entry.actor == "clerk-7" and entry.action == "registered"
        assert "national_id" in entry.fields and "445566" not in entry.fields
        outbox = (await session.execute(select(OutboxMessage))).scalars().all()
    payloads = b" ".join(m.payload for m in outbox)
    for secret in ("أحمد".encode(), b"445566", b"770 123 4567", b"7701234567", "علي".encode()):
        assert secret not in payloads


async def test_probable_duplicate_then_confirm(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    first = await client.post("/api/v1/beneficiaries", json=person(community_id), headers=headers)
    assert first.status_code == 201
    again = person(community_id, first_name="احمد")  # hamza dropped, same father and birth year
    body = assert_problem(await client.post("/api/v1/beneficiaries", json=again, headers=headers), 409)
    assert body["candidates"][0]["id"] == first.json()["id"]
    assert body["candidates"][0]["score"] > 0.8 and body["candidates"][0]["reasons"]
    assert await count(app, Beneficiary) == 1
    confirmed = await client.post("/api/v1/beneficiaries", json={**again, "confirm_not_duplicate": True},
                                  headers=headers)
    assert confirmed.status_code == 201
    other = person(community_id, first_name="أحمد", father_name="كريم", grandfather_name="جاسم")
    assert (await client.post("/api/v1/beneficiaries", json=other, headers=headers)).status_code == 201
    # Place never blocks: the same person registered in another district is found there too.
    elsewhere = person(await community(client, env, "IQG15Q01"))
    body = assert_problem(await client.post("/api/v1/beneficiaries", json=elsewhere, headers=headers), 409)
    assert first.json()["id"] in {c["id"] for c in body["candidates"]}


async def test_same_national_id_is_always_409(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    first = await client.post("/api/v1/beneficiaries", json=person(community_id, national_id="١٢٣٤٥٦٧٨"),
                              headers=headers)
    assert first.status_code == 201
    # Another person entirely, same ID typed with ASCII digits and spaces, even when confirmed.
    dup = person(community_id, first_name="Zainab", father_name="Kadhim", sex="female", national_id="1234 5678",
                 confirm_not_duplicate=True)
    body = assert_problem(await client.post("/api/v1/beneficiaries", json=dup, headers=headers), 409)
    assert body["type"] == "urn:crp:problem:duplicate-national-id" and body["candidates"] == []
    assert first.json()["id"] not in str(body)
    # A caller who cannot see the holder's governorate gets exactly the same answer: nothing out of scope leaks.
    anbar = env.token("case_worker", governorates=("IQG01",))
    anbar_community = (await client.post("/api/v1/communities", json={"name": "Ramadi", "district_pcode": "IQG01Q01"},
                                         headers=anbar)).json()["id"]
    scoped = assert_problem(await client.post("/api/v1/beneficiaries", headers=anbar,
                                              json={**dup, "community_id": anbar_community}), 409)
    assert scoped == body
    assert await count(app, Beneficiary) == 1


async def test_governorate_scope_hides_records(api: Any, env: Env) -> None:
    client, _ = api
    community_id = await community(client, env)  # Ninewa (IQG15)
    created = (await client.post("/api/v1/beneficiaries", json=person(community_id),
                                 headers=env.token("case_worker"))).json()
    anbar = env.token("case_worker", governorates=("IQG01",))
    assert_problem(await client.get(f"/api/v1/beneficiaries/{created['id']}", headers=anbar), 404)
    assert_problem(await client.get(f"/api/v1/communities/{community_id}", headers=anbar), 404)
    assert (await client.get("/api/v1/beneficiaries", headers=anbar)).json()["items"] == []
    assert_problem(await client.patch(f"/api/v1/beneficiaries/{created['id']}", json={"phone": "+9647701111111"},
                                      headers={**anbar, "If-Match": "*"}), 404)
    assert_problem(await client.post("/api/v1/beneficiaries", json=person(community_id, first_name="Sara"),
                                     headers=anbar), 422)
    ninewa = env.token("case_worker", governorates=("IQG15",))
    assert (await client.get(f"/api/v1/beneficiaries/{created['id']}", headers=ninewa)).status_code == 200
    assert len((await client.get("/api/v1/beneficiaries", headers=ninewa)).json()["items"]) == 1


async def test_idempotency_key_replays_without_second_effect(api: Any, env: Env) -> None:
    client, app = api
    headers = {**env.token("case_worker"), "Idempotency-Key": "reg-0001"}
    community_id = await community(client, env)
    body = person(community_id)
    first = await client.post("/api/v1/beneficiaries", json=body, headers=headers)
    outbox_rows = await count(app, OutboxMessage)
    replay = await client.post("/api/v1/beneficiaries", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json() and replay.headers["etag"] == first.headers["etag"]
    assert replay.headers["idempotency-replayed"] == "true"
    assert await count(app, Beneficiary) == 1
    assert await count(app, OutboxMessage) == outbox_rows  # no second event either
    other = await client.post("/api/v1/beneficiaries", json={**body, "first_name": "Omar"}, headers=headers)
    assert_problem(other, 422)


async def test_patch_needs_if_match(api: Any, env: Env) -> None:
    client, app = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    created = await client.post("/api/v1/beneficiaries", json=person(community_id), headers=headers)
    url = f"/api/v1/beneficiaries/{created.json()['id']}"
    assert_problem(await client.patch(url, json={"displacement_status": "idp"}, headers=headers), 428)
    etag = created.headers["etag"]
    ok = await client.patch(url, json={"displacement_status": "idp"}, headers={**headers, "If-Match": etag})
    assert ok.status_code == 200 and ok.json()["displacement_status"] == "idp" and ok.json()["version"] == 2
    assert ok.headers["etag"] != etag
    stale = await client.patch(url, json={"displacement_status": "host_community"},
                               headers={**headers, "If-Match": etag})
    assert_problem(stale, 412)
    assert (await client.get(url, headers=headers)).json()["displacement_status"] == "idp"
    assert_problem(await client.patch(url, json={"first_name": None}, headers={**headers, "If-Match": "*"}), 422)


async def test_merge_and_search(api: Any, env: Env) -> None:
    client, app = api
    worker, manager = env.token("case_worker"), env.token("programme_manager")
    community_id = await community(client, env)
    a = (await client.post("/api/v1/beneficiaries", json=person(community_id, first_name="فاطمة", sex="female"),
                           headers=worker)).json()
    b = (await client.post("/api/v1/beneficiaries", json=person(community_id, first_name="فاطمه", sex="female",
                                                                confirm_not_duplicate=True),
                           headers=worker)).json()
    assert_problem(await client.post(f"/api/v1/beneficiaries/{a['id']}/merge", json={"duplicate_id": b["id"]},
                                     headers=worker), 403)
    merged = await client.post(f"/api/v1/beneficiaries/{a['id']}/merge", json={"duplicate_id": b["id"]},
                               headers=manager)
    assert merged.status_code == 200, merged.text
    assert (await client.get(f"/api/v1/beneficiaries/{b['id']}", headers=worker)).json()["merged_into_id"] == a["id"]
    again = await client.post(f"/api/v1/beneficiaries/{a['id']}/merge", json={"duplicate_id": b["id"]},
                              headers=manager)
    assert_problem(again, 409)
    found = (await client.get("/api/v1/beneficiaries", params={"q": "فاطمة"}, headers=worker)).json()["items"]
    assert [p["id"] for p in found] == [a["id"]]  # the merged record is hidden by default
    listed = await client.get("/api/v1/beneficiaries", params={"q": "فاطمه", "include_merged": "true"},
                              headers=worker)
    assert {p["id"] for p in listed.json()["items"]} == {a["id"], b["id"]}
    assert (await client.get("/api/v1/beneficiaries", params={"q": "Zainab"}, headers=worker)).json()["items"] == []


async def test_cursor_pagination(api: Any, env: Env) -> None:
    client, _ = api
    headers = env.token("case_worker")
    community_id = await community(client, env)
    for i in range(5):
        resp = await client.post("/api/v1/beneficiaries", headers=headers, json=person(
            community_id, first_name=f"Name{i}", father_name=f"Father{i}", date_of_birth=f"199{i}-01-01"))
        assert resp.status_code == 201
    seen: list[str] = []
    url: str | None = "/api/v1/beneficiaries?limit=2"
    pages = 0
    while url:
        resp = await client.get(url, headers=headers)
        page = resp.json()
        seen += [p["id"] for p in page["items"]]
        pages += 1
        if page["next_cursor"]:
            assert 'rel="next"' in resp.headers["link"]
            url = f"/api/v1/beneficiaries?limit=2&cursor={page['next_cursor']}"
        else:
            assert "link" not in resp.headers
            url = None
    assert pages == 3 and len(seen) == len(set(seen)) == 5
    assert_problem(await client.get("/api/v1/beneficiaries?limit=501", headers=headers), 422)
    assert_problem(await client.get("/api/v1/beneficiaries?cursor=@@@", headers=headers), 422)


async def test_each_list_binds_its_own_values_to_the_shared_statement(api: Any, env: Env) -> None:
    """The list's statement is built once per combination of filters and reused with each request's values
    (services.beneficiaries.service.list_beneficiaries_query): requests of the same shape but other values, one
    after another, each get their own answer; another caller's scope is never carried over."""
    client, _ = api
    admin = env.token("admin")
    ninewa, erbil = await community(client, env, "IQG15Q05"), await community(client, env, "IQG11Q01")
    for first, father, place, born in (("Layla", "Karim", ninewa, "1980-01-01"),
                                       ("Samira", "Yousif", erbil, "1975-05-05"),
                                       ("Layla", "Hamid", erbil, "1990-03-03")):
        resp = await client.post("/api/v1/beneficiaries", headers=admin, json=person(
            place, first_name=first, father_name=father, grandfather_name=None, date_of_birth=born))
        assert resp.status_code == 201, resp.text

    async def names(headers: dict[str, str], **params: str) -> list[str]:
        resp = await client.get("/api/v1/beneficiaries", params=params, headers=headers)
        assert resp.status_code == 200, resp.text
        return sorted(f"{p['first_name']} {p['father_name']}" for p in resp.json()["items"])

    assert await names(admin, q="layla") == ["Layla Hamid", "Layla Karim"]
    assert await names(admin, q="samira") == ["Samira Yousif"]
    assert await names(admin, q="layla karim") == ["Layla Karim"]
    assert await names(admin, q="layla yousif") == []
    assert await names(admin, governorate="IQG11") == ["Layla Hamid", "Samira Yousif"]
    assert await names(admin, governorate="IQG15") == ["Layla Karim"]
    assert await names(env.token("case_worker", governorates=("IQG15",))) == ["Layla Karim"]
    assert await names(env.token("case_worker", governorates=("IQG11",))) == ["Layla Hamid", "Samira Yousif"]
    assert await names(env.token("case_worker", governorates=("IQG11", "IQG15")), q="layla") == [
        "Layla Hamid", "Layla Karim"]
    assert await names(env.token("case_worker", governorates=("IQG01",))) == []
    assert await names(admin, community_id=ninewa) == ["Layla Karim"]
    assert await names(admin, community_id=erbil, q="layla") == ["Layla Hamid"]
    # LIKE's wildcards in a search are letters to find, not patterns (normalised away, or escaped)
    assert await names(admin, q="%") == await names(admin) and await names(admin, q="l_yla") == []


async def test_reads_take_no_lock_and_see_only_committed_rows(api: Any, env: Env) -> None:
    """A GET by id and the list read without a session (shared.db.Reads). While another process holds the write
    lock with an uncommitted change (SQLite: BEGIN IMMEDIATE; PostgreSQL: a row lock), both answer at once, with
    the committed values: a read that took SQLite's write lock would wait for it (30 s)."""
    import asyncio

    from tests.locks import uncommitted_update

    client, app = api
    headers = env.token("case_worker")
    created = (await client.post("/api/v1/beneficiaries", headers=headers,
                                 json=person(await community(client, env)))).json()
    async with uncommitted_update(app, env.backend, "beneficiaries", created["id"], first_name="Uncommitted"):
        async with asyncio.timeout(5):
            one = await client.get(f"/api/v1/beneficiaries/{created['id']}", headers=headers)
            page = await client.get("/api/v1/beneficiaries", headers=headers)
        assert one.status_code == 200 and one.json()["first_name"] == created["first_name"] == "أحمد"
        assert one.headers["etag"] == (await client.get(f"/api/v1/beneficiaries/{created['id']}",
                                                        headers=headers)).headers["etag"]
        assert [p["first_name"] for p in page.json()["items"]] == ["أحمد"]


async def test_a_read_without_session_gives_the_values_the_engine_gives(api: Any, env: Env) -> None:
    """``shared.db.Reads`` (on PostgreSQL, asyncpg's own rows) returns every column as SQLAlchemy's engine does:
    text, dates, aware UTC timestamps, JSON, nulls; and a statement with a column the driver would return
    otherwise (an Enum, a type decorator of another kind) is read through the engine instead."""
    from sqlalchemy import Enum, bindparam, column
    from sqlalchemy import select as select_

    from shared.db import _ENGINE, _compile_for_driver
    from tests.locks import read_as_the_engine

    client, app = api
    headers = env.token("programme_manager")
    created = (await client.post("/api/v1/beneficiaries", headers=headers, json=person(
        await community(client, env), phone="+9647701234567", national_id="19880402123",
        disability={"seeing": 2, "hearing": 1, "walking": 3, "cognition": 1, "self_care": 1,
                    "communication": 1}))).json()
    withdrawn = await client.post(f"/api/v1/beneficiaries/{created['id']}/consent-withdrawal", headers=headers,
                                  json={"withdrawn_on": "2026-11-20", "reason": "moved away"})
    assert withdrawn.status_code == 200, withdrawn.text
    table: Any = Beneficiary.__table__
    stmt = select_(*table.c).where(table.c.id == bindparam("id"))
    # The first read of a statement goes through the engine, the next ones (a statement kept for reuse) straight
    # through the driver on PostgreSQL: both must give what the engine gives.
    reads = await read_as_the_engine(app, stmt, {"id": created["id"]}, reads=3)
    read = reads[-1]
    assert read.disability["walking"] == 3 and read.consent_withdrawn_on.isoformat() == "2026-11-20"
    assert read.created_at.tzinfo is not None and read.national_id_hash is not None
    assert await app.state.reads.first(stmt, {"id": "nobody"}) is None
    if env.backend == "postgresql":
        assert _compile_for_driver(stmt, app.state.engine.dialect) is not _ENGINE
        kinds = select_(table.c.id, column("kind", Enum("a", "b", name="kind")))
        assert _compile_for_driver(kinds, app.state.engine.dialect) is _ENGINE
        assert app.state.reads._compiled.get(stmt) is not None  # read twice: now compiled for the driver


async def test_a_read_without_session_processes_its_values_as_the_engine_does(api: Any, env: Env) -> None:
    """A value bound to a ``Reads`` statement goes through its type as through the engine (on PostgreSQL asyncpg is
    given it directly): an aware timestamp in another zone selects the same rows as in UTC, a naive one is refused
    as SQLAlchemy refuses it, on both backends."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import bindparam
    from sqlalchemy import select as select_

    client, app = api
    created = (await client.post("/api/v1/beneficiaries", headers=env.token("case_worker"),
                                 json=person(await community(client, env)))).json()
    table: Any = Beneficiary.__table__
    stmt = select_(table.c.id).where(table.c.created_at <= bindparam("at"), table.c.id == bindparam("id"))
    at = datetime.fromisoformat(created["created_at"].replace("Z", "+00:00")) + timedelta(seconds=1)
    baghdad = at.astimezone(timezone(timedelta(hours=3)))
    assert [r.id for r in await app.state.reads.all(stmt, {"at": at, "id": created["id"]})] == [created["id"]]
    assert [r.id for r in await app.state.reads.all(stmt, {"at": baghdad, "id": created["id"]})] == [created["id"]]
    earlier = (at - timedelta(seconds=2)).astimezone(timezone(timedelta(hours=3)))
    assert await app.state.reads.all(stmt, {"at": earlier, "id": created["id"]}) == []
    with pytest.raises(Exception, match="timezone"):
        await app.state.reads.all(stmt, {"at": at.astimezone(UTC).replace(tzinfo=None), "id": created["id"]})


async def test_a_read_survives_its_connection_being_dropped(api: Any, env: Env) -> None:
    """PostgreSQL: the server drops the reads' pooled connections (a restart, an idle timeout, an operator): the next
    GET and list still answer 200, on a new connection (a read is tried once more), not a 503 or a 500. Rounds at
    different delays after the drop, as asyncpg may learn of it before, during or after the next read."""
    if env.backend != "postgresql":
        pytest.skip("asyncpg's pool of reads is PostgreSQL's")
    import asyncpg

    from tests.conftest import POSTGRES_URL

    client, app = api
    headers = env.token("case_worker")
    created = (await client.post("/api/v1/beneficiaries", headers=headers,
                                 json=person(await community(client, env)))).json()
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        for delay in (0, 0, 0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05) * 2:
            for _ in range(2):  # the second read of the statement is the driver's (shared.db.Reads)
                assert (await client.get(f"/api/v1/beneficiaries/{created['id']}", headers=headers)).status_code == 200
                assert (await client.get("/api/v1/beneficiaries", headers=headers)).status_code == 200
            name = f"crp-reads-{app.state.settings.schema}"[:63]
            dropped = await admin.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                           "WHERE application_name = $1", name)
            assert dropped >= 1
            await asyncio.sleep(delay)
            one = await client.get(f"/api/v1/beneficiaries/{created['id']}", headers=headers)
            page = await client.get("/api/v1/beneficiaries", headers=headers)
            assert one.status_code == 200 and one.json()["id"] == created["id"], (delay, one.text)
            assert page.status_code == 200 and [p["id"] for p in page.json()["items"]] == [created["id"]], (delay,
                                                                                                           page.text)
    finally:
        await admin.close()


async def test_health_and_metrics(api: Any, env: Env) -> None:
    client, app = api
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    await app.state.bus.wait_ready(10)
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    resp = await client.get("/api/v1/locations/governorates", headers={**env.token("viewer"), "X-Request-ID": "abc-1"})
    assert resp.headers["x-request-id"] == "abc-1"
    assert (await client.get("/healthz")).headers["x-request-id"]
    metrics = (await client.get("/metrics")).text
    assert 'crp_http_requests_total{method="GET",route="/api/v1/locations/governorates"' in metrics


async def test_the_list_reads_its_index_in_order_and_sorts_nothing(api: Any, env: Env) -> None:
    """A page of the register, newest first, whole country or one governorate, first page or a later one, is read
    from an index in the list's order and stops after the page: no sort of the whole register per page (SQLite
    sorted all of it, 60 ms a page at 50,000 people). SQLite's plan, with no statistics, as in production."""
    if env.backend != "sqlite":
        pytest.skip("the plan is SQLite's (PostgreSQL chooses by its statistics)")
    from services.beneficiaries.service import list_beneficiaries_query
    from shared.auth import Principal
    from shared.pagination import _paged

    _, app = api
    everywhere = Principal(sub="t", roles=frozenset({"admin"}), governorates=frozenset({"*"}))
    ninewa = Principal(sub="t", roles=frozenset({"case_worker"}), governorates=frozenset({"IQG15"}))
    queries = [list_beneficiaries_query(principal=p, community_id=None, governorate=g, displacement_status=None,
                                        q=q, include_merged=False)
               for p, g, q in ((everywhere, None, None), (everywhere, "IQG15", None), (ninewa, None, None),
                               (everywhere, None, "ahmad"))]
    pages = [(stmt, params, False) for stmt, params in queries] + [(*queries[0], True)]  # a later page
    async with app.state.engine.connect() as conn:
        for stmt, params, later in pages:
            # The statement the list runs (paginate's), with this request's values bound.
            values = dict(params, _page_limit=51, **({"_page_created": "2100-01-01 00:00:00", "_page_id": "z"}
                                                     if later else {}))
            state = _paged(stmt, Beneficiary, later, True).compile(conn.sync_connection).construct_expanded_state(
                values)
            plan = " / ".join(row[-1] for row in (await conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {state.statement}", tuple(state.positional_parameters))).all())
            assert "USING INDEX ix_beneficiaries_" in plan and "_live_order" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
