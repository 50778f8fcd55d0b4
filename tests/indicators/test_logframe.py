"""The logframe over HTTP: reporting periods, targets per indicator, period and governorate, frozen periods
whose figures never change, late events counted in the current period and listed as adjustments."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from services.indicators.app import create_app
from services.indicators.config import IndicatorsSettings
from shared.consumer import Outcome, apply_or_dead_letter
from shared.events import CloudEvent
from tests.conftest import Env, running
from tests.indicators.test_reach import disbursement, registered


def _target(body: dict[str, Any], period: str, governorate: str | None = None) -> dict[str, Any]:
    return next(t for t in body["targets"] if t["period"] == period and t["governorate"] == governorate
                and t["indicator"] == "individuals_directly_assisted")


async def test_targets_frozen_periods_and_late_events(env: Env) -> None:
    app = create_app(env.settings(IndicatorsSettings))
    manager, officer = env.token("programme_manager"), env.token("me_officer")
    erbil_officer = env.token("me_officer", governorates=("IQG07",))

    async def apply(*events: CloudEvent) -> None:
        async with app.state.sessionmaker() as session, session.begin():
            for event in events:
                assert await apply_or_dead_letter(session, app.state.applier, subject=event.type,
                                                  payload=event.model_dump_json().encode(), attempt=1,
                                                  max_attempts=1) is Outcome.SETTLED

    async with running(app) as client:
        for code, starts, ends in (("2026-Q1", "2026-01-01", "2026-03-31"), ("2026-Q2", "2026-04-01", "2026-06-30")):
            resp = await client.post("/api/v1/indicators/periods", headers=manager,
                                     json={"code": code, "starts_on": starts, "ends_on": ends})
            assert resp.status_code == 201, resp.text
        again = await client.post("/api/v1/indicators/periods", headers=manager,
                                  json={"code": "2026-Q1", "starts_on": "2026-01-01", "ends_on": "2026-03-31"})
        assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
        backwards = await client.post("/api/v1/indicators/periods", headers=manager,
                                      json={"code": "x", "starts_on": "2026-02-01", "ends_on": "2026-01-01"})
        assert backwards.status_code == 422
        for target in ({"indicator": "individuals_directly_assisted", "period": "2026-Q1", "target": 10},
                       {"indicator": "individuals_directly_assisted", "period": "2026-Q1", "target": 5,
                        "governorate": "IQG15"},
                       {"indicator": "individuals_directly_assisted", "period": "2026-Q2", "target": 8},
                       {"indicator": "individuals_directly_assisted", "period": "2026-Q1", "target": 2,
                        "governorate": "IQG07"}):
            resp = await client.put("/api/v1/indicators/targets", headers=officer, json=target)
            assert resp.status_code == 200, resp.text
        replaced = await client.put("/api/v1/indicators/targets", headers=manager, json={
            "indicator": "individuals_directly_assisted", "period": "2026-Q2", "target": 20})
        assert replaced.json() == {"indicator": "individuals_directly_assisted", "period": "2026-Q2",
                                   "governorate": None, "target": 20}
        # bad input, roles and scope
        for body, status in (({"indicator": "shoe_sizes", "period": "2026-Q1", "target": 1}, 422),
                             ({"indicator": "grants_disbursed", "period": "2026-Q1", "target": -1}, 422),
                             ({"indicator": "grants_disbursed", "period": "2099", "target": 1}, 404)):
            resp = await client.put("/api/v1/indicators/targets", headers=manager, json=body)
            assert resp.status_code == status and resp.headers["content-type"] == "application/problem+json", body
        some = {"indicator": "grants_disbursed", "period": "2026-Q1", "target": 1}
        assert (await client.put("/api/v1/indicators/targets", json=some)).status_code == 401
        assert (await client.put("/api/v1/indicators/targets", headers=env.token("case_worker"),
                                 json=some)).status_code == 403
        assert (await client.put("/api/v1/indicators/targets", headers=erbil_officer, json=some)).status_code == 403
        assert (await client.put("/api/v1/indicators/targets", headers=erbil_officer,
                                 json={**some, "governorate": "IQG15"})).status_code == 404
        assert (await client.post("/api/v1/indicators/periods/2026-Q1/freeze",
                                  headers=env.token("viewer"))).status_code == 403

        people = [str(uuid.uuid4()) for _ in range(5)]
        await apply(*(registered(p) for p in people))
        await apply(disbursement(people[0], date(2026, 1, 5)), disbursement(people[1], date(2026, 2, 5)),
                    disbursement(people[2], date(2026, 3, 5)),
                    disbursement(people[3], date(2026, 3, 6), governorate="IQG07"))
        body = (await client.get("/api/v1/indicators/summary", headers=officer)).json()
        q1 = _target(body, "2026-Q1")
        assert (q1["target"], q1["actual"], q1["percent_achieved"], q1["frozen"]) == (10, 4, 40.0, False)
        assert _target(body, "2026-Q1", "IQG15")["actual"] == 3
        assert _target(body, "2026-Q2")["actual"] == 0 and body["adjustments"] == []

        frozen = await client.post("/api/v1/indicators/periods/2026-Q1/freeze", headers=manager)
        assert frozen.status_code == 200 and frozen.json()["frozen_at"].endswith("Z")
        twice = await client.post("/api/v1/indicators/periods/2026-Q1/freeze", headers=manager)
        assert twice.status_code == 409 and twice.json()["type"].endswith("period-frozen")
        assert (await client.post("/api/v1/indicators/periods/2031-Q9/freeze", headers=manager)).status_code == 404
        late = await client.put("/api/v1/indicators/targets", headers=manager, json={
            "indicator": "individuals_directly_assisted", "period": "2026-Q1", "target": 99})
        assert late.status_code == 409  # a frozen period's targets no longer change either

        # a late event: assistance given in February arrives after Q1 was frozen
        await apply(disbursement(people[4], date(2026, 2, 20)))
        body = (await client.get("/api/v1/indicators/summary", headers=officer)).json()
        q1 = _target(body, "2026-Q1")
        assert (q1["actual"], q1["frozen"], q1["target"]) == (4, True, 10)  # unchanged
        assert _target(body, "2026-Q1", "IQG15")["actual"] == 3
        assert body["individuals_directly_assisted"] == 5
        q2 = _target(body, "2026-Q2")
        assert (q2["actual"], q2["percent_achieved"]) == (1, 5.0)  # counted in the current period
        assert {"period": "2026-Q1", "indicator": "individuals_directly_assisted", "governorate": None,
                "frozen_value": 4, "value_now": 5, "adjustment": 1} in body["adjustments"]
        assert {"period": "2026-Q1", "indicator": "individuals_directly_assisted", "governorate": "IQG15",
                "frozen_value": 3, "value_now": 4, "adjustment": 1} in body["adjustments"]
        # a scoped token sees its governorates' targets only
        scoped = (await client.get("/api/v1/indicators/summary", headers=erbil_officer)).json()
        assert [(t["period"], t["governorate"], t["actual"]) for t in scoped["targets"]] == [("2026-Q1", "IQG07", 1)]
        periods = (await client.get("/api/v1/indicators/periods", headers=officer)).json()
        assert [(p["code"], p["frozen_at"] is not None) for p in periods] == [("2026-Q1", True), ("2026-Q2", False)]


async def test_a_period_frozen_twice_at_once_is_frozen_once(env: Env) -> None:
    import asyncio

    from sqlalchemy import func, select

    from services.indicators.models import FrozenFigure

    app = create_app(env.settings(IndicatorsSettings))
    manager = env.token("programme_manager")
    async with running(app) as client:
        assert (await client.post("/api/v1/indicators/periods", headers=manager, json={
            "code": "2026-H1", "starts_on": "2026-01-01", "ends_on": "2026-06-30"})).status_code == 201
        answers = await asyncio.gather(*(client.post("/api/v1/indicators/periods/2026-H1/freeze", headers=manager)
                                         for _ in range(3)))
        assert sorted(a.status_code for a in answers) == [200, 409, 409]
        async with app.state.sessionmaker() as session:
            stored = (await session.execute(select(func.count()).select_from(FrozenFigure))).scalar_one()
        assert stored == 19 * 5  # the programme and each governorate, five indicators: stored once
