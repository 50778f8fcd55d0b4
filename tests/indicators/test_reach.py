"""The reach ledger: one person counted once whatever mix of assistance, merges and reversals, in any order;
breakdowns computed in the database that always sum to their totals; assistance before registration placed
where it was given and counted the same in the summary and every breakdown."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from services.indicators import service as svc
from services.indicators.app import service
from services.indicators.config import IndicatorsSettings
from services.indicators.models import Reach
from shared.consumer import Outcome, apply_or_dead_letter
from shared.db import create_engine, create_sessionmaker
from shared.events import CloudEvent, EventData
from shared.events.beneficiaries import BeneficiaryMerged, BeneficiaryRegistered
from shared.events.grants import DisbursementMade, DisbursementReversed
from shared.events.training import EnrolmentCompleted
from tests.conftest import Env
from tests.indicators.test_projection_order import SEQUENCE


def wrap(data: EventData) -> CloudEvent:
    return CloudEvent.wrap(data, source=f"/crp/{data.service}")


def registered(person: str, *, sex: str = "female", birth_year: int = 1990, governorate: str = "IQG15",
               at: str = "2026-01-10T09:00:00Z", revision: int = 1) -> CloudEvent:
    return wrap(BeneficiaryRegistered(
        beneficiary_id=person, revision=revision, sex=sex, birth_year=birth_year, displacement_status="idp",
        community_id=str(uuid.uuid5(uuid.NAMESPACE_URL, governorate)), district_pcode=f"{governorate}Q01",
        governorate_pcode=governorate, has_disability=False, registered_at=at))


def disbursement(person: str, on: date, *, governorate: str = "IQG15", disbursement_id: str | None = None,
                 reversed_on: date | None = None) -> CloudEvent:
    facts = dict(grant_id=str(uuid.uuid5(uuid.NAMESPACE_OID, person)), revision=3, call_id=None,
                 beneficiary_id=person, sector="dairy", currency="USD",
                 community_id=str(uuid.uuid5(uuid.NAMESPACE_DNS, governorate)), district_pcode=f"{governorate}Q02",
                 governorate_pcode=governorate, disbursement_id=disbursement_id or str(uuid.uuid4()), tranche=1,
                 amount="500.00", disbursed_on=on)
    if reversed_on is not None:
        return wrap(DisbursementReversed(**facts, reversed_on=reversed_on))
    return wrap(DisbursementMade(**facts))


def completion(person: str, on: date, *, governorate: str = "IQG07",
               audience: str = "community_members") -> CloudEvent:
    return wrap(EnrolmentCompleted(
        enrolment_id=str(uuid.uuid4()), course_id=str(uuid.uuid4()), beneficiary_id=person, revision=4,
        status="completed", skill_area="tailoring", audience=audience,
        community_id=str(uuid.uuid5(uuid.NAMESPACE_X500, governorate)), district_pcode=f"{governorate}Q03",
        governorate_pcode=governorate, completed_on=on, certified=True, attendance_percent=90, overridden=False))


def merged(survivor: str, duplicate: str) -> CloudEvent:
    return wrap(BeneficiaryMerged(beneficiary_id=survivor, duplicate_id=duplicate, merged_at="2026-06-01T00:00:00Z"))


class Projection:
    """A fresh indicators database fed through the consumer's own policy."""

    def __init__(self, sessionmaker: Any) -> None:
        self.sessionmaker = sessionmaker
        self.applier = service.applier()

    async def apply(self, *events: CloudEvent) -> None:
        for event in events:
            async with self.sessionmaker() as session, session.begin():
                outcome = await apply_or_dead_letter(session, self.applier, subject=event.type,
                                                     payload=event.model_dump_json().encode(), attempt=1,
                                                     max_attempts=1)
                assert outcome is Outcome.SETTLED

    async def summary(self, governorates: frozenset[str] | None = None) -> dict[str, Any]:
        async with self.sessionmaker() as session:
            return await svc.summary(session=session, governorates=governorates)

    async def assisted(self, governorates: frozenset[str] | None = None) -> int:
        return int((await self.summary(governorates))["individuals_directly_assisted"])

    async def breakdown(self, *by: str, indicator: str = "individuals_directly_assisted",
                        governorates: frozenset[str] | None = None, **window: date) -> list[dict[str, Any]]:
        async with self.sessionmaker() as session:
            return await svc.breakdown(session=session, indicator=indicator, by=by, governorates=governorates,
                                       **window)

    async def reach(self, person: str) -> Reach | None:
        async with self.sessionmaker() as session:
            return await session.get(Reach, person)


@pytest.fixture
async def projection(env: Env) -> AsyncIterator[Projection]:
    settings = env.settings(IndicatorsSettings)
    engine = create_engine(settings)
    try:
        await service.migrate(engine, settings)
        yield Projection(create_sessionmaker(engine))
    finally:
        await engine.dispose()


async def test_a_grant_and_a_training_for_one_person_count_once(projection: Projection) -> None:
    person = str(uuid.uuid4())
    await projection.apply(registered(person), disbursement(person, date(2026, 3, 5)),
                           completion(person, date(2026, 2, 20)))
    assert await projection.assisted() == 1
    # described at the first assistance: the training, in Erbil, under human capital, in February
    assert await projection.breakdown("pillar", "governorate", "month") == [
        {"pillar": "human_capital", "governorate": "IQG07", "month": "2026-02", "value": 1}]
    # two pillars, one person: every breakdown has exactly one person
    for by in ("sex", "pillar", "community", "district"):
        assert sum(c["value"] for c in await projection.breakdown(by)) == 1
    # local authority staff trained serve good governance
    official = str(uuid.uuid4())
    await projection.apply(completion(official, date(2026, 1, 2), audience="local_authority_staff"))
    assert {"pillar": "good_governance", "value": 1} in await projection.breakdown("pillar")


@pytest.mark.parametrize("merge_first", [True, False], ids=["merge-before", "merge-after"])
async def test_a_merge_before_or_after_the_assistance_counts_one_person(projection: Projection,
                                                                        merge_first: bool) -> None:
    survivor, duplicate = str(uuid.uuid4()), str(uuid.uuid4())
    assistance = [disbursement(duplicate, date(2026, 4, 1), governorate="IQG01"),
                  completion(survivor, date(2026, 5, 1))]
    events = [registered(survivor, sex="male", birth_year=2014), registered(duplicate, sex="female")]
    events += [merged(survivor, duplicate), *assistance] if merge_first else [*assistance, merged(survivor, duplicate)]
    await projection.apply(*events)
    assert await projection.assisted() == 1
    assert await projection.reach(duplicate) is None
    row = await projection.reach(survivor)
    # the survivor's own facts; the first assistance (the duplicate's grant, in Anbar, April 2026); age then
    assert row is not None and (row.sex, row.governorate_pcode, row.month, row.age_group, row.pillar) == (
        "male", "IQG01", "2026-04", "12-17", "local_economies")
    assert await projection.breakdown("sex", "age_group") == [{"sex": "male", "age_group": "12-17", "value": 1}]


async def test_assistance_before_registration_counts_the_same_in_the_summary_and_every_breakdown(
        projection: Projection) -> None:
    person = str(uuid.uuid4())
    await projection.apply(disbursement(person, date(2026, 2, 1), governorate="IQG15"))
    assert await projection.assisted() == 1
    assert await projection.assisted(frozenset({"IQG15"})) == 1  # placed where it was given
    assert await projection.breakdown("governorate") == [{"governorate": "IQG15", "value": 1}]
    assert await projection.breakdown("sex", "age_group", "disability") == [
        {"sex": "unknown", "age_group": "unknown", "disability": "unknown", "value": 1}]
    assert await projection.breakdown("community", governorates=frozenset({"IQG15"})) == [
        {"community": str(uuid.uuid5(uuid.NAMESPACE_DNS, "IQG15")), "value": 1}]
    # the registration arrives (living elsewhere): the person is still placed where assisted; now described
    await projection.apply(registered(person, sex="female", birth_year=2021, governorate="IQG07"))
    assert await projection.assisted(frozenset({"IQG15"})) == 1 and await projection.assisted(
        frozenset({"IQG07"})) == 0
    assert await projection.breakdown("sex", "age_group") == [{"sex": "female", "age_group": "5-11", "value": 1}]
    assert (await projection.summary())["beneficiaries_registered"] == 1


async def test_a_reversal_undoes_the_assistance_and_moves_the_first_assistance(projection: Projection) -> None:
    person, other = str(uuid.uuid4()), str(uuid.uuid4())
    early = str(uuid.uuid4())
    await projection.apply(registered(person), disbursement(person, date(2026, 1, 15), disbursement_id=early),
                           completion(person, date(2026, 3, 1)))
    assert [c["month"] for c in await projection.breakdown("month")] == ["2026-01"]
    await projection.apply(disbursement(person, date(2026, 1, 15), disbursement_id=early,
                                        reversed_on=date(2026, 1, 20)))
    assert await projection.breakdown("month", "pillar") == [{"month": "2026-03", "pillar": "human_capital",
                                                              "value": 1}]
    # a person whose only assistance was reversed, reversal first, is not assisted
    gone = str(uuid.uuid4())
    await projection.apply(disbursement(other, date(2026, 2, 2), disbursement_id=gone, reversed_on=date(2026, 2, 3)),
                           disbursement(other, date(2026, 2, 2), disbursement_id=gone))
    assert await projection.assisted() == 1 and await projection.reach(other) is None


async def test_duplicate_and_out_of_order_delivery_give_the_same_figures(env: Env) -> None:
    a, b, c = (str(uuid.uuid4()) for _ in range(3))
    paid = str(uuid.uuid4())
    events = [registered(a, sex="male"), registered(b), registered(c, birth_year=1950, governorate="IQG01"),
              disbursement(a, date(2026, 2, 1), disbursement_id=paid), completion(b, date(2026, 3, 1)),
              merged(a, b), completion(c, date(2026, 1, 1), governorate="IQG01"),
              disbursement(a, date(2026, 2, 1), disbursement_id=paid, reversed_on=date(2026, 2, 9)),
              disbursement(c, date(2025, 12, 1), governorate="IQG01")]
    rng = random.Random(7)
    results = []
    for run in range(4):
        order = list(events) + rng.sample(events, 3)  # redeliveries
        rng.shuffle(order)
        settings = env.settings(IndicatorsSettings, name=f"indicators_order{run}")
        engine = create_engine(settings)
        try:
            await service.migrate(engine, settings)
            p = Projection(create_sessionmaker(engine))
            await p.apply(*order)
            results.append((await p.assisted(), await p.breakdown("sex", "governorate", "month"),
                            await p.breakdown("pillar")))
        finally:
            await engine.dispose()
    assert all(result == results[0] for result in results)
    assert results[0][0] == 2  # a (with b merged in; a's grant reversed, b's training counts) and c
    assert results[0][1] == [{"sex": "female", "governorate": "IQG01", "month": "2025-12", "value": 1},
                             {"sex": "male", "governorate": "IQG07", "month": "2026-03", "value": 1}]


async def test_every_breakdown_sums_to_its_total(projection: Projection) -> None:
    await projection.apply(*SEQUENCE)
    extra = [str(uuid.uuid4()) for _ in range(4)]
    await projection.apply(disbursement(extra[0], date(2026, 5, 3)), registered(extra[1], sex="male"),
                           completion(extra[1], date(2026, 4, 30)), completion(extra[2], date(2026, 5, 31)),
                           registered(extra[3]))
    window = {"from_": date(2026, 4, 30), "to": date(2026, 5, 31)}
    for indicator in svc.PERSON_INDICATORS:
        dims = [d for d in svc.DIMENSIONS if d != "pillar" or indicator == "individuals_directly_assisted"]
        total = (await projection.summary())[indicator]
        assert total > 0
        async with projection.sessionmaker() as session:
            in_window = await svc.period_figures(session=session, governorates=None,
                                                 starts_on=window["from_"], ends_on=window["to"])
        for size in (1, 2, 3):
            for by in itertools.combinations(dims, size):
                cells = await projection.breakdown(*by, indicator=indicator)
                assert sum(c["value"] for c in cells) == total, (indicator, by)
                assert len({tuple(c[d] for d in by) for c in cells}) == len(cells)  # one cell per combination
                windowed = await projection.breakdown(*by, indicator=indicator, **window)
                assert sum(c["value"] for c in windowed) == in_window[indicator], (indicator, by, "window")
        for governorate in ("IQG15", "IQG07", "IQG01"):
            scoped = await projection.breakdown("sex", indicator=indicator, governorates=frozenset({governorate}))
            figure = (await projection.summary(frozenset({governorate})))[indicator]
            assert sum(c["value"] for c in scoped) == figure


async def test_the_month_aligned_counts_table_agrees_with_the_ledger(projection: Projection) -> None:
    """Breakdowns read the counts table when they can; the same question asked of the ledger row by row (a window
    not aligned on months forces it) must give the same cells."""
    await projection.apply(*SEQUENCE)
    people = [str(uuid.uuid4()) for _ in range(12)]
    for i, person in enumerate(people):
        await projection.apply(registered(person, sex=("female", "male")[i % 2], birth_year=1950 + 6 * i),
                               disbursement(person, date(2026, 1 + i % 6, 1 + i if i < 11 else 30),
                                            governorate=("IQG15", "IQG01")[i % 2]))
    for by in (("sex", "age_group", "governorate"), ("pillar", "month"), ("disability", "displacement_status"),
               ("pillar", "sex", "age_group")):
        whole = await projection.breakdown(*by)  # reach_cells when it has the dimensions
        rows = await projection.breakdown(*by, from_=date(2000, 1, 1), to=date(2099, 12, 30))  # the ledger's rows
        assert whole == rows and whole
        months = await projection.breakdown(*by, from_=date(2026, 2, 1), to=date(2026, 4, 30))  # reach_monthly
        rows = await projection.breakdown(*by, from_=date(2026, 2, 1), to=date(2026, 4, 29))
        assert months == rows
    for by in (("sex", "age_group", "governorate"), ("month", "disability"), ("displacement_status", "sex")):
        cells = await projection.breakdown(*by, indicator="beneficiaries_registered")  # registered_cells
        rows = await projection.breakdown(*by, indicator="beneficiaries_registered", from_=date(2000, 1, 1),
                                          to=date(2099, 12, 30))  # the persons' rows
        assert cells == rows and cells


async def test_reach_rows_are_described_at_first_assistance(projection: Projection) -> None:
    person = str(uuid.uuid4())
    await projection.apply(registered(person, birth_year=2008, at="2026-01-01T00:00:00Z"),
                           disbursement(person, date(2025, 3, 1)))
    async with projection.sessionmaker() as session:
        rows = (await session.execute(select(Reach))).scalars().all()
    assert [(r.age_group, r.first_on) for r in rows] == [("12-17", date(2025, 3, 1))]  # 17 then, 18 at registration
    registered_cells = await projection.breakdown("age_group", indicator="beneficiaries_registered")
    assert registered_cells == [{"age_group": "18-59", "value": 1}]
    assert datetime(2026, 1, 1, tzinfo=UTC).year - 2008 == 18


async def test_rebuild_equals_live_and_keeps_the_logframe(env: Env) -> None:
    """The whole recorded history (registrations, merges, grants, reversals, trainings) through the live
    consumer, then rebuilt from the stream, aside and into a fresh database: every projection table, the summary
    and the breakdowns are equal; targets and frozen figures (not projections) survive the swap."""
    import nats
    from sqlalchemy import func
    from sqlalchemy import inspect as sa_inspect

    from services.indicators.app import create_app
    from services.indicators.models import PROJECTION_TABLES
    from shared.bus import ensure_stream
    from shared.consumer import ProcessedEvent
    from tests.conftest import eventually, running
    from tests.pipeline.test_rebuild import run_rebuild, subject

    settings = env.settings(IndicatorsSettings)
    manager = env.token("programme_manager")

    async def dump(sessionmaker: Any) -> dict[str, Any]:
        tables = {}
        async with sessionmaker() as session:
            for table in PROJECTION_TABLES:
                rows = (await session.execute(select(table).order_by(*sa_inspect(table).primary_key))).scalars()
                tables[table.__tablename__] = [row.model_dump() for row in rows]
            figures = await svc.summary(session=session, governorates=None)
            cells = await svc.breakdown(session=session, indicator="individuals_directly_assisted",
                                        by=["sex", "governorate", "pillar"], governorates=None)
        figures.pop("as_of")
        return {"tables": tables, "summary": figures, "breakdown": cells}

    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await ensure_stream(js, settings)
        for event in SEQUENCE:
            await js.publish(subject(settings, event), event.model_dump_json().encode(),
                             headers={"Nats-Msg-Id": event.id})
    finally:
        await nc.close()
    app = create_app(settings)
    async with running(app) as client:
        async def applied() -> bool:
            async with app.state.sessionmaker() as session:
                count = (await session.execute(select(func.count()).select_from(ProcessedEvent))).scalar_one()
                return count == len(SEQUENCE)

        await eventually(applied, timeout=30)
        assert (await client.post("/api/v1/indicators/periods", headers=manager, json={
            "code": "2026", "starts_on": "2026-01-01", "ends_on": "2026-12-31"})).status_code == 201
        assert (await client.put("/api/v1/indicators/targets", headers=manager, json={
            "indicator": "individuals_directly_assisted", "period": "2026", "target": 4})).status_code == 200
        assert (await client.post("/api/v1/indicators/periods/2026/freeze", headers=manager)).status_code == 200
        live = await dump(app.state.sessionmaker)
        assert live["summary"]["individuals_directly_assisted"] == 3 and live["tables"]["reach_monthly"]
        stats = await run_rebuild(settings)
        assert stats.applied == len(SEQUENCE)
        rebuilt = await dump(app.state.sessionmaker)
        body = (await client.get("/api/v1/indicators/summary", headers=manager)).json()
        assert [(t["target"], t["actual"], t["frozen"]) for t in body["targets"]] == [(4, 3, True)]
    fresh_settings = env.settings(IndicatorsSettings, name="indicators_fresh")
    await run_rebuild(fresh_settings)  # the same stream, another database
    engine = create_engine(fresh_settings)
    try:
        fresh = await dump(create_sessionmaker(engine))
    finally:
        await engine.dispose()
    fresh["summary"]["targets"] = live["summary"]["targets"]  # the fresh database has no logframe
    fresh["summary"]["adjustments"] = live["summary"]["adjustments"]
    assert live == rebuilt == fresh
