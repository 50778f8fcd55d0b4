"""Erasure on request and by retention: personal fields cleared for good, the anonymous facts kept, audited
without values, one pseudonymous event; the retention applied by housekeeping (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select, update

from services.beneficiaries.app import create_app
from services.beneficiaries.app import service as beneficiaries_service
from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.models import Beneficiary
from services.grants.app import service as grants_service
from services.grants.config import GrantsSettings
from services.grants.models import Grant
from services.grants.service import ERASED
from shared.audit import AuditEntry
from shared.db import utcnow
from shared.housekeeping import Housekeeping
from tests.beneficiaries.test_api import assert_problem, community, person
from tests.beneficiaries.test_concurrency import events_of
from tests.conftest import Env, eventually, running

PERSONAL = {"first_name": "Huda", "father_name": "Salem", "grandfather_name": "Yasin", "phone": "+964 770 555 0199",
            "national_id": "ERASE-ME-123"}


async def test_erasure_waits_for_every_service_holding_data(env: Env) -> None:
    """A service holding personal data about the person cannot be reached: 503, and nothing is erased here."""
    app = create_app(env.settings(BeneficiariesSettings, upstreams={"grants": "http://127.0.0.1:9"}))
    async with running(app) as client:
        created = (await client.post("/api/v1/beneficiaries", headers=env.token("case_worker"), json=person(
            await community(client, env), **PERSONAL))).json()
        refused = await client.post(f"/api/v1/beneficiaries/{created['id']}/erasure",
                                    json={"requested_on": "2026-11-20"}, headers=env.token("programme_manager"))
        assert_problem(refused, 503)
        still = await client.get(f"/api/v1/beneficiaries/{created['id']}", headers=env.token("case_worker"))
        assert still.json()["first_name"] == "Huda" and still.json()["erased_on"] is None
        assert await events_of(app, created["id"], ".beneficiary.erased.v1") == []


async def test_erasure_on_request(env: Env) -> None:
    app = create_app(env.settings(BeneficiariesSettings, upstreams={}))
    async with running(app) as client:
        worker = env.token("case_worker")
        created = (await client.post("/api/v1/beneficiaries", headers=worker, json=person(
            await community(client, env), **PERSONAL, date_of_birth="1979-08-30"))).json()
        url = f"/api/v1/beneficiaries/{created['id']}/erasure"
        body = {"requested_on": "2026-11-20"}
        assert_problem(await client.post(url, json=body), 401)
        assert_problem(await client.post(url, json=body, headers=worker), 403)
        assert_problem(await client.post(url, json=body, headers=env.token(
            "programme_manager", governorates=("IQG01",))), 404)  # out of scope: as if it did not exist
        assert_problem(await client.post(url, json={"requested_on": "2999-01-01"},
                                         headers=env.token("programme_manager")), 422)
        erased = await client.post(url, json=body, headers=env.token("programme_manager", sub="dpo-7"))
        assert erased.status_code == 200, erased.text
        public = erased.json()
        assert public["erased_on"] == "2026-11-20" and public["date_of_birth"] == "1979-01-01"
        assert not any(v in erased.text for v in PERSONAL.values())
        assert (public["sex"], public["displacement_status"], public["governorate_pcode"]) == \
            ("male", "returnee", "IQG15")
        assert_problem(await client.post(url, json=body, headers=env.token("admin")), 409)
        # the same national ID can be registered again: its hash is gone, nothing links the two
        again = await client.post("/api/v1/beneficiaries", headers=worker, json=person(
            await community(client, env), first_name="Other", father_name="Person", national_id="ERASE-ME-123",
            date_of_birth="1960-01-01"))
        assert again.status_code == 201, again.text

        events = await events_of(app, created["id"], ".beneficiary.erased.v1")
        assert [e["data"] for e in events] == [{"beneficiary_id": created["id"], "revision": public["version"],
                                                "reason": "request"}]
        async with app.state.sessionmaker() as session:
            entries = (await session.execute(select(AuditEntry).where(
                AuditEntry.entity_id == created["id"]))).scalars().all()
            row = await session.get(Beneficiary, created["id"])
        assert row is not None and row.national_id_hash is None and row.search_key == "" and row.phone is None
        erasure = [e for e in entries if e.action == "erased_request"]
        assert len(erasure) == 1 and erasure[0].actor == "dpo-7"
        assert "phone" in json.loads(erasure[0].fields)
        assert not any(v in json.dumps([e.fields for e in entries]) for v in PERSONAL.values())


async def test_retention_erases_what_has_not_changed_for_its_period(env: Env) -> None:
    settings = env.settings(BeneficiariesSettings, personal_data_retention_days=30, upstreams={},
                            housekeeping_interval_seconds=3600)
    app = create_app(settings)
    async with running(app) as client:
        worker = env.token("case_worker")
        where = await community(client, env)
        old = (await client.post("/api/v1/beneficiaries", headers=worker, json=person(where, **PERSONAL))).json()
        recent = (await client.post("/api/v1/beneficiaries", headers=worker, json=person(
            where, first_name="Recent", father_name="Person", date_of_birth="2001-01-01"))).json()
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(update(Beneficiary).where(Beneficiary.id == old["id"]).values(
                updated_at=utcnow() - timedelta(days=31)))
        await Housekeeping(settings, app.state.sessionmaker, beneficiaries_service.housekeeping)._once()

        async def erased() -> bool:  # by this pass, or by the app's own housekeeping if it held the row (skip locked)
            got = await client.get(f"/api/v1/beneficiaries/{old['id']}", headers=worker)
            return got.json()["erased_on"] is not None

        await eventually(erased)
        gone = (await client.get(f"/api/v1/beneficiaries/{old['id']}", headers=worker)).json()
        kept = (await client.get(f"/api/v1/beneficiaries/{recent['id']}", headers=worker)).json()
        assert gone["erased_on"] == date.today().isoformat() and gone["first_name"] == "" and gone["phone"] is None
        assert kept["erased_on"] is None and kept["first_name"] == "Recent"
        events = await events_of(app, old["id"], ".beneficiary.erased.v1")
        assert [e["data"]["reason"] for e in events] == ["retention"]
        async with app.state.sessionmaker() as session:
            actors = (await session.execute(select(AuditEntry.actor).where(
                AuditEntry.entity_id == old["id"], AuditEntry.action == "erased_retention"))).scalars().all()
        assert actors == ["retention"]

    # without the setting nothing is erased, however old
    plain = env.settings(BeneficiariesSettings, name="beneficiaries_plain")
    app = create_app(plain)
    async with running(app) as client:
        worker = env.token("case_worker")
        kept_id = (await client.post("/api/v1/beneficiaries", headers=worker, json=person(
            await community(client, env)))).json()["id"]
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(update(Beneficiary).values(updated_at=utcnow() - timedelta(days=3650)))
        await Housekeeping(plain, app.state.sessionmaker, beneficiaries_service.housekeeping)._once()
        assert (await client.get(f"/api/v1/beneficiaries/{kept_id}", headers=worker)).json()["erased_on"] is None


async def test_grants_retention_and_erasure_hook(env: Env) -> None:
    settings = env.settings(GrantsSettings, personal_data_retention_days=30, housekeeping_interval_seconds=3600)
    app = grants_service.create_app(settings)
    async with running(app) as client:
        def grant(name: str, person_id: str, days_old: int) -> Grant:
            return Grant(beneficiary_id=person_id, requested_beneficiary_id=person_id, business_name=name,
                         sector="food", currency="USD", amount_requested=Decimal("100"), status="submitted",
                         community_id="c", district_pcode="IQG15Q05", governorate_pcode="IQG15",
                         submitted_on=date.today(), updated_at=utcnow() - timedelta(days=days_old))

        async with app.state.sessionmaker() as session, session.begin():
            rows = [grant("Old Bakery", "p1", 40), grant("New Bakery", "p2", 1), grant("Asked Bakery", "p3", 1)]
            session.add_all(rows)
        ids = [r.id for r in rows]
        await Housekeeping(settings, app.state.sessionmaker, grants_service.housekeeping)._once()

        async def erased() -> bool:  # by this pass, or by the app's own housekeeping if it held the row
            async with app.state.sessionmaker() as session:
                row = await session.get(Grant, ids[0], populate_existing=True)
                return row is not None and row.business_name == ERASED

        await eventually(erased)
        hook = "/api/v1/grants/personal-data-erasure"
        assert (await client.post(hook, json={"beneficiary_id": "p3"},
                                  headers=env.token("case_worker"))).status_code == 403
        out_of_scope = await client.post(hook, json={"beneficiary_id": "p3"},
                                         headers=env.token("programme_manager", governorates=("IQG01",)))
        assert out_of_scope.json() == {"grants_erased": 0}
        done = await client.post(hook, json={"beneficiary_id": "p3"}, headers=env.token("programme_manager"))
        assert done.status_code == 200 and done.json() == {"grants_erased": 1}
        async with app.state.sessionmaker() as session:
            names = {g.id: g.business_name for g in (await session.execute(select(Grant))).scalars().all()}
        assert [names[i] for i in ids] == [ERASED, "New Bakery", ERASED]

