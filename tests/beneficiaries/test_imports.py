"""Bulk import: a job per upload, its rows registered a batch at a time with the single-registration rules, a
per-row report."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from services.beneficiaries.app import create_app, service
from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.imports import service as imports
from services.beneficiaries.imports.models import ImportJob, ImportRow
from services.beneficiaries.models import Beneficiary, DuplicateReview
from shared.audit import AuditEntry
from shared.auth import Principal
from shared.db import create_engine, create_sessionmaker
from shared.events import CloudEvent
from shared.outbox import Outbox, OutboxMessage
from tests.beneficiaries.test_api import assert_problem, community, count, person
from tests.conftest import Env, eventually, running

FIELDS = ["first_name", "father_name", "grandfather_name", "sex", "date_of_birth", "displacement_status",
          "community_id", "national_id", "phone", "consent.given", "consent.obtained_on", "disability.seeing"]


def to_csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()


def csv_row(community_id: str, **overrides: Any) -> dict[str, Any]:
    row = {"first_name": "Zainab", "father_name": "Kareem", "grandfather_name": "Jassim", "sex": "female",
           "date_of_birth": "1992-03-10", "displacement_status": "idp", "community_id": community_id,
           "consent.given": "true", "consent.obtained_on": "2026-10-01"}
    row.update(overrides)
    return row


@pytest.fixture
async def api(env: Env) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = create_app(env.settings(BeneficiariesSettings, import_batch_size=3))
    async with running(app) as client:
        yield client, app


async def finished(client: httpx.AsyncClient, env: Env, job_id: str, role: str = "case_worker",
                   sub: str = "tester") -> dict[str, Any]:
    async def done() -> Any:
        job = (await client.get(f"/api/v1/beneficiaries/imports/{job_id}", headers=env.token(role, sub=sub))).json()
        return job if job["status"] == "completed" else None
    return await eventually(done, timeout=30)


async def report(client: httpx.AsyncClient, env: Env, job_id: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {}), "limit": 2}
        resp = await client.get(f"/api/v1/beneficiaries/imports/{job_id}/rows", params=query,
                                headers=env.token("case_worker"))
        assert resp.status_code == 200, resp.text
        rows += resp.json()["items"]
        if not (cursor := resp.json()["next_cursor"]):
            return rows


async def test_import_valid_invalid_and_duplicate_rows(api: Any, env: Env) -> None:
    client, app = api
    cid = await community(client, env)
    # Already in the registry: the same person typed another way in the file is a probable duplicate.
    resp = await client.post("/api/v1/beneficiaries", json=person(cid), headers=env.token("case_worker"))
    assert resp.status_code == 201
    existing_id = resp.json()["id"]
    before_events = await count(app, OutboxMessage)
    upload = to_csv([
        csv_row(cid, national_id="IQ-1234-5678"),                                          # 1 created
        csv_row(cid, first_name="Omar", father_name="Salim", sex="male", date_of_birth="1970-01-01"),  # 2 created
        csv_row(cid, **{"consent.given": "false"}),                                        # 3 invalid: no consent
        csv_row(cid, date_of_birth="not a date", first_name="Huda"),                       # 4 invalid: date
        csv_row("no-such-community", first_name="Layla"),                                  # 5 invalid: community
        csv_row(cid, first_name="احمد", father_name="علي", grandfather_name="", sex="male",
                date_of_birth="1988-07-15", displacement_status="returnee"),               # 6 duplicate: registry
        csv_row(cid, first_name="Zaynab", father_name="Karim"),                            # 7 duplicate: row 1
        csv_row(cid, first_name="Noor", father_name="Hassan", national_id="iq 1234 5678"), # 8 same national ID
    ])
    resp = await client.post("/api/v1/beneficiaries/imports", content=upload,
                             headers={**env.token("case_worker"), "Content-Type": "text/csv"})
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["total_rows"] == 8 and job["format"] == "csv"
    assert resp.headers["Location"].endswith(f"/api/v1/beneficiaries/imports/{job['id']}")

    job = await finished(client, env, job["id"])
    assert (job["processed_rows"], job["created_rows"], job["duplicate_rows"], job["invalid_rows"]) == (8, 2, 3, 3)
    rows = {r["row_number"]: r for r in await report(client, env, job["id"])}
    assert [rows[n]["status"] for n in range(1, 9)] == ["created", "created", "invalid", "invalid", "invalid",
                                                       "duplicate", "duplicate", "duplicate"]
    assert {e["loc"][-1] for e in rows[3]["errors"]} == {"given"}
    assert rows[4]["errors"][0]["loc"] == ["date_of_birth"] and "not a date" not in json.dumps(rows[4])
    assert rows[5]["errors"][0]["loc"][-1] == "community_id"
    assert rows[6]["candidates"][0]["id"] == existing_id and rows[6]["candidates"][0]["row_number"] is None
    assert rows[6]["candidates"][0]["reasons"] and rows[6]["candidates"][0]["score"] > 0
    assert rows[7]["candidates"][0]["id"] == rows[1]["beneficiary_id"] and rows[7]["candidates"][0]["row_number"] == 1
    assert rows[8]["candidates"] == [] and rows[8]["errors"][0]["loc"] == ["national_id"]
    assert [r["row_number"] for r in await report(client, env, job["id"], status="invalid")] == [3, 4, 5]

    # Rows became registrations with the same rules and events as single registrations.
    created = await client.get(f"/api/v1/beneficiaries/{rows[1]['beneficiary_id']}", headers=env.token("case_worker"))
    assert created.json()["has_national_id"] and created.json()["first_name"] == "Zainab"
    async with app.state.sessionmaker() as session:
        payloads = (await session.execute(select(OutboxMessage.payload).order_by(OutboxMessage.seq)
                                          .offset(before_events))).scalars().all()
        stored = (await session.execute(select(ImportRow.record))).scalars().all()
    events = [CloudEvent.model_validate_json(p) for p in payloads]
    assert [e.type for e in events] == ["crp.beneficiaries.beneficiary.registered.v1"] * 2
    assert {e.data["beneficiary_id"] for e in events} == {rows[1]["beneficiary_id"], rows[2]["beneficiary_id"]}
    # the national ID, raw or normalised (a fragment as short as "1234" also occurs in random ids by chance)
    assert not any("Zainab" in p.decode() or "12345678" in p.decode() or "1234-5678" in p.decode()
                   for p in payloads)
    # What is kept of the file is sealed, and only for rows awaiting review.
    kept = [r for r in stored if r is not None]
    assert len(kept) == 3 and not any("Zainab" in r or "Zaynab" in r or "12345678" in r or "1234-5678" in r
                                    for r in kept)


async def test_reupload_returns_the_same_job_and_imports_nothing_twice(api: Any, env: Env) -> None:
    client, app = api
    cid = await community(client, env)
    upload = json.dumps([person(cid, first_name=name, father_name="Yousif", date_of_birth=f"19{60 + i}-01-01")
                         for i, name in enumerate(["Ali", "Sara", "Muna", "Fadhil"])]).encode()
    headers = {**env.token("partner_system"), "Content-Type": "application/json"}
    first = await client.post("/api/v1/beneficiaries/imports", content=upload, headers=headers)
    assert first.status_code == 202, first.text
    await finished(client, env, first.json()["id"], role="partner_system")
    again = await client.post("/api/v1/beneficiaries/imports", content=upload, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["status"] == "completed" and again.json()["created_rows"] == 4
    assert await count(app, ImportJob) == 1 and await count(app, ImportRow) == 4
    assert await count(app, Beneficiary) == 4
    # Another caller's upload of the same bytes is its own job (whose rows are then probable duplicates).
    other = await client.post("/api/v1/beneficiaries/imports", content=upload,
                              headers={**env.token("case_worker", sub="clerk-2"), "Content-Type": "application/json"})
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
    job = await finished(client, env, other.json()["id"], sub="clerk-2")
    assert job["duplicate_rows"] == 4 and await count(app, Beneficiary) == 4


async def test_confirm_reviewed_duplicates(api: Any, env: Env) -> None:
    client, app = api
    cid = await community(client, env)
    upload = to_csv([csv_row(cid), csv_row(cid, first_name="Zaynab", father_name="Karim"),
                     csv_row(cid, first_name="Basim", sex="male")])
    resp = await client.post("/api/v1/beneficiaries/imports", content=upload,
                             headers={**env.token("case_worker"), "Content-Type": "text/csv; charset=utf-8"})
    job_id = resp.json()["id"]
    await finished(client, env, job_id)
    url = f"/api/v1/beneficiaries/imports/{job_id}/confirmations"
    assert_problem(await client.post(url, json={"rows": [1, 2]}, headers=env.token("case_worker")), 409)
    assert_problem(await client.post(url, json={"rows": [9]}, headers=env.token("case_worker")), 422)
    assert_problem(await client.post(url, json={"rows": []}, headers=env.token("case_worker")), 422)
    assert_problem(await client.post(url, json={"rows": [2]}, headers=env.token("me_officer")), 403)
    assert_problem(await client.post(url, json={"rows": [2]}, headers=env.token("case_worker", sub="other")), 404)
    assert await count(app, Beneficiary) == 2

    resp = await client.post(url, json={"rows": [2]}, headers=env.token("case_worker"))
    assert resp.status_code == 200, resp.text
    [row] = resp.json()
    assert row["status"] == "created" and row["confirmed"] and row["beneficiary_id"]
    assert await count(app, Beneficiary) == 3
    job = (await client.get(f"/api/v1/beneficiaries/imports/{job_id}", headers=env.token("case_worker"))).json()
    assert (job["created_rows"], job["duplicate_rows"]) == (3, 0)
    assert_problem(await client.post(url, json={"rows": [2]}, headers=env.token("case_worker")), 409)
    assert await count(app, Beneficiary) == 3


async def test_bad_uploads_and_access(api: Any, env: Env) -> None:
    client, _ = api
    url = "/api/v1/beneficiaries/imports"
    assert_problem(await client.post(url, content=b"[]", headers={"Content-Type": "application/json"}), 401)
    assert_problem(await client.post(url, content=b"[]", headers={**env.token("me_officer"),
                                                                  "Content-Type": "application/json"}), 403)
    worker = env.token("case_worker")
    assert_problem(await client.post(url, content=b"x", headers={**worker, "Content-Type": "text/plain"}), 415)
    bad_uploads = [(b"[]", "application/json"), (b'{"a": 1}', "application/json"), (b"[1, 2]", "application/json"),
                   (b"not json", "application/json"), (b"\xff\xfe", "text/csv"), (b"a,b\n1,2\n", "text/csv"),
                   (b"first_name,father_name\n", "text/csv")]
    for body, media in bad_uploads:
        assert_problem(await client.post(url, content=body, headers={**worker, "Content-Type": media}), 422)
    assert_problem(await client.get(f"{url}/nope", headers=worker), 404)
    assert_problem(await client.get(f"{url}/nope/rows", headers=worker), 404)
    cid = await community(client, env)
    resp = await client.post(url, content=to_csv([csv_row(cid)]), headers={**worker, "Content-Type": "text/csv"})
    job_id = resp.json()["id"]
    # Only the uploader, or a programme manager covering its governorates, sees a job.
    assert_problem(await client.get(f"{url}/{job_id}", headers=env.token("case_worker", sub="someone")), 404)
    assert_problem(await client.get(f"{url}/{job_id}", headers=env.token("programme_manager", sub="pm",
                                                                         governorates=("IQG01",))), 404)
    assert (await client.get(f"{url}/{job_id}", headers=env.token("programme_manager", sub="pm"))).status_code == 200
    assert_problem(await client.get(f"{url}/{job_id}/rows?cursor=abc", headers=worker), 422)
    assert_problem(await client.get(f"{url}/{job_id}/rows?status=odd", headers=worker), 422)
    # A scoped uploader's rows are registered within its scope only: Ninewa's community is unknown to Basra.
    basra = env.token("case_worker", sub="basra", governorates=("IQG02",))
    resp = await client.post(url, content=to_csv([csv_row(cid, first_name="Rasha")]),
                             headers={**basra, "Content-Type": "text/csv"})
    job = await finished(client, env, resp.json()["id"], sub="basra")
    assert job["invalid_rows"] == 1


CLERK = Principal(sub="clerk", roles=frozenset({"case_worker"}), governorates=frozenset({"*"}))


async def community_with_the_service_stopped(settings: BeneficiariesSettings, env: Env) -> str:
    """Run the service once (migrations, a community to register people in), then stop it with its relay idle
    (not between its read and its mark), so a test can drive the import worker's batches by hand."""
    app = create_app(settings)
    async with running(app) as client:
        cid = await community(client, env)

        async def relayed() -> bool:
            async with app.state.sessionmaker() as session:
                return (await session.execute(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.published_at.is_(None)))).scalar_one() == 0  # type: ignore[union-attr]
        await eventually(relayed)
    return cid


async def test_restart_resumes_without_half_applied_rows(env: Env) -> None:
    settings = env.settings(BeneficiariesSettings, import_batch_size=2)
    cid = await community_with_the_service_stopped(settings, env)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    principal = CLERK
    records = [csv_row(cid, first_name=name, date_of_birth=f"19{50 + i}-05-05")
               for i, name in enumerate(["Ali", "Sara", "Muna", "Fadhil", "Rami"])]
    try:
        async with sessionmaker() as session, session.begin():
            job, _ = await imports.create_import(session=session, settings=settings, principal=principal,
                                                 body=to_csv(records), content_type="text/csv")
        # One batch is done, then the process "stops".
        async with sessionmaker() as session, session.begin():
            assert await imports.process_batch(session=session, outbox=Outbox(settings), settings=settings,
                                               job_id=job.id, batch_size=2)
        async with sessionmaker() as session:
            done = (await session.execute(select(func.count()).select_from(ImportRow).where(
                ImportRow.status != "pending"))).scalar_one()
            people = (await session.execute(select(func.count()).select_from(Beneficiary))).scalar_one()
            assert done == 2 and people == 2
    finally:
        await engine.dispose()
    app = service.create_app(settings)
    async with running(app) as client:
        job_public = await finished(client, env, job.id, role="programme_manager")
        assert job_public["created_rows"] == 5 and job_public["processed_rows"] == 5
        assert await count(app, Beneficiary) == 5
        async with app.state.sessionmaker() as session:
            ids = (await session.execute(select(ImportRow.beneficiary_id))).scalars().all()
        assert len(set(ids)) == 5 and None not in ids


# -- the batch path ----------------------------------------------------------------------------------------
async def test_batches_find_duplicates_in_the_batch_in_earlier_batches_and_in_the_registry(api: Any,
                                                                                            env: Env) -> None:
    client, app = api  # three rows per batch
    cid = await community(client, env)
    haidar = person(cid, first_name="Haidar", father_name="Talib", grandfather_name="Kadhim",
                    date_of_birth="1975-06-01")
    resp = await client.post("/api/v1/beneficiaries", json=haidar, headers=env.token("case_worker"))
    registry_id = resp.json()["id"]
    upload = to_csv([
        csv_row(cid),                                                                     # 1 created
        csv_row(cid, first_name="Zaynab", father_name="Karim"),                           # 2 row 1, same batch
        csv_row(cid, first_name="Omar", father_name="Salim", sex="male", date_of_birth="1970-01-01"),  # 3 created
        csv_row(cid, first_name="Umar", father_name="Saleem", sex="male", date_of_birth="1970-01-01",
                grandfather_name=""),                                                     # 4 row 3, earlier batch
        csv_row(cid, first_name="حيدر", father_name="طالب", grandfather_name="", sex="male",
                date_of_birth="1975-02-02"),                                              # 5 the registry
        csv_row(cid, first_name="Zainab", father_name="Kareem", date_of_birth="1993-03-10"),  # 6 another year
        csv_row(cid, first_name="Zaynab", father_name="Karim", date_of_birth="1993-05-05"),   # 7 row 6, earlier batch
        csv_row(cid, first_name="Muna", father_name="Adnan", national_id="IQ-42-42"),        # 8 created
        csv_row(cid, first_name="Salma", father_name="Nabil", national_id="iq 4242"),        # 9 row 8's ID
    ])
    resp = await client.post("/api/v1/beneficiaries/imports", content=upload,
                             headers={**env.token("case_worker"), "Content-Type": "text/csv"})
    job = await finished(client, env, resp.json()["id"])
    assert (job["created_rows"], job["duplicate_rows"], job["invalid_rows"]) == (4, 5, 0)
    rows = {r["row_number"]: r for r in await report(client, env, job["id"])}
    expected = {2: (rows[1]["beneficiary_id"], 1), 4: (rows[3]["beneficiary_id"], 3), 5: (registry_id, None),
                7: (rows[6]["beneficiary_id"], 6)}
    for n, (candidate_id, row_number) in expected.items():
        assert rows[n]["status"] == "duplicate"
        assert [(c["id"], c["row_number"]) for c in rows[n]["candidates"]] == [(candidate_id, row_number)], n
    assert rows[8]["status"] == "created"  # the same national ID in the same batch: refused, the holder not named
    assert rows[9]["status"] == "duplicate" and rows[9]["candidates"] == []
    assert rows[9]["errors"][0]["loc"] == ["national_id"]
    # The same scoring as a single registration: the same record posted alone gets the same candidate and score.
    single = await client.post("/api/v1/beneficiaries", headers=env.token("case_worker"), json=person(
        cid, first_name="Umar", father_name="Saleem", grandfather_name=None, sex="male", date_of_birth="1970-01-01",
        consent={"given": True, "obtained_on": "2026-10-01"}))
    assert single.status_code == 409
    [candidate] = single.json()["candidates"]
    assert {k: candidate[k] for k in ("id", "score", "reasons")} == {
        k: rows[4]["candidates"][0][k] for k in ("id", "score", "reasons")}
    assert await count(app, Beneficiary) == 5
    # A reviewer's confirmation registers the row and queues the pair for review, as a confirmed registration does.
    resp = await client.post(f"/api/v1/beneficiaries/imports/{job['id']}/confirmations", json={"rows": [2, 4]},
                             headers=env.token("case_worker"))
    assert resp.status_code == 200 and [r["status"] for r in resp.json()] == ["created", "created"]
    async with app.state.sessionmaker() as session:
        pairs = {(r.beneficiary_id, r.candidate_id, r.source) for r in (await session.execute(
            select(DuplicateReview))).scalars()}
    assert pairs == {(r["beneficiary_id"], rows[n]["candidates"][0]["id"], "registration")
                     for n, r in zip((2, 4), resp.json(), strict=True)}


async def test_a_batch_failing_midway_writes_nothing_and_the_job_resumes(env: Env) -> None:
    settings = env.settings(BeneficiariesSettings, import_batch_size=3)
    cid = await community_with_the_service_stopped(settings, env)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    principal = CLERK
    records = [csv_row(cid, first_name=name, date_of_birth=f"19{50 + i}-05-05")
               for i, name in enumerate(["Ali", "Sara", "Muna", "Fadhil", "Rami", "Huda", "Basim"])]

    async def counts() -> tuple[int, ...]:
        async with sessionmaker() as session:
            return tuple([(await session.execute(select(func.count()).select_from(model))).scalar_one()
                          for model in (Beneficiary, OutboxMessage, AuditEntry)]
                         + [(await session.execute(select(func.count()).select_from(ImportRow).where(
                             ImportRow.status != "pending"))).scalar_one()])

    try:
        async with sessionmaker() as session, session.begin():
            job, _ = await imports.create_import(session=session, settings=settings, principal=principal,
                                                 body=to_csv(records), content_type="text/csv")
        async with sessionmaker() as session, session.begin():
            assert await imports.process_batch(session=session, outbox=Outbox(settings), settings=settings,
                                               job_id=job.id, batch_size=3)
        after_first = await counts()
        assert after_first[0] == 3 and after_first[3] == 3
        # A real constraint refuses the second batch's outcomes, the last thing it writes (after its records,
        # audit entries and events): a second created row from row 4 on breaks this unique index.
        async with engine.begin() as conn:
            await conn.execute(text("CREATE UNIQUE INDEX test_poison ON beneficiary_import_rows (status) "
                                    "WHERE status = 'created' AND row_number >= 4"))
        with pytest.raises(IntegrityError):
            async with sessionmaker() as session, session.begin():
                await imports.process_batch(session=session, outbox=Outbox(settings), settings=settings,
                                            job_id=job.id, batch_size=3)
        assert await counts() == after_first  # no record, event, audit entry or outcome of the batch is kept
        async with sessionmaker() as session:
            stored = await session.get(ImportJob, job.id)
            assert stored is not None and (stored.processed_rows, stored.created_rows) == (3, 3)
        async with engine.begin() as conn:
            await conn.execute(text("DROP INDEX test_poison"))
    finally:
        await engine.dispose()
    app = service.create_app(settings)
    async with running(app) as client:  # the worker picks the job up again at row 4
        job_public = await finished(client, env, job.id, role="programme_manager")
        assert (job_public["processed_rows"], job_public["created_rows"]) == (7, 7)
        assert await count(app, Beneficiary) == 7 and await count(app, AuditEntry) == 8  # and the community's
        async with app.state.sessionmaker() as session:
            ids = (await session.execute(select(ImportRow.beneficiary_id))).scalars().all()
            events = (await session.execute(select(OutboxMessage.payload))).scalars().all()
        assert len(set(ids)) == 7 and None not in ids
        registered = [CloudEvent.model_validate_json(p) for p in events]
        assert sorted(e.data["beneficiary_id"] for e in registered if e.type.endswith("registered.v1")) == sorted(ids)


async def test_imported_rows_have_the_events_and_audit_of_single_registrations(api: Any, env: Env) -> None:
    client, app = api
    cid = await community(client, env)
    disability = {"seeing": 1, "hearing": 1, "walking": 3, "cognition": 1, "self_care": 1, "communication": 1}
    common = dict(sex="female", date_of_birth="1990-02-03", displacement_status="idp", phone="+9647701234567",
                  disability=disability, consent={"given": True, "obtained_on": "2026-10-01"})
    resp = await client.post("/api/v1/beneficiaries", headers=env.token("case_worker"), json=person(
        cid, first_name="Rasha", father_name="Majid", grandfather_name="Raad", national_id="IQ-555-111", **common))
    assert resp.status_code == 201
    single_id = resp.json()["id"]
    upload = json.dumps([person(cid, first_name="Wafa", father_name="Ghanim", grandfather_name="Falah",
                               national_id="IQ-555-222", **common)]).encode()
    resp = await client.post("/api/v1/beneficiaries/imports", content=upload,
                             headers={**env.token("case_worker"), "Content-Type": "application/json"})
    job = await finished(client, env, resp.json()["id"])
    [row] = await report(client, env, job["id"])
    imported_id = row["beneficiary_id"]
    async with app.state.sessionmaker() as session:
        messages = {m.payload: m for m in (await session.execute(select(OutboxMessage))).scalars()}
        audit_rows = (await session.execute(select(AuditEntry).where(AuditEntry.entity == "beneficiary"))).scalars()
        audits = {a.entity_id: a for a in audit_rows}
    events = {(e := CloudEvent.model_validate_json(p)).subject: (e, m) for p, m in messages.items()}
    (single, single_msg), (imported, imported_msg) = events[single_id], events[imported_id]
    assert imported.type == single.type == "crp.beneficiaries.beneficiary.registered.v1"
    assert imported_msg.subject == single_msg.subject and imported.source == single.source
    assert set(imported.model_dump()) == set(single.model_dump())
    assert set(imported.data) == set(single.data)
    differ = {"beneficiary_id", "registered_at"}
    assert {k: v for k, v in imported.data.items() if k not in differ} == {
        k: v for k, v in single.data.items() if k not in differ}
    assert imported.data["has_disability"] is True and imported.data["birth_year"] == 1990
    for payload in messages:
        text_ = payload.decode()
        secrets = ("Wafa", "Rasha", "7701234567", "555-111", "555-222", "1990-02-03")  # long enough not to be chance
        assert not any(secret in text_ for secret in secrets)
    assert audits[imported_id].action == audits[single_id].action == "registered"
    assert audits[imported_id].fields == audits[single_id].fields and "national_id" in audits[imported_id].fields
