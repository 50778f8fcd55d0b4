"""Indicators over HTTP: summary, scope, breakdown, public suppression, out-of-order merges."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from services.indicators.app import create_app
from services.indicators.config import IndicatorsSettings
from shared.consumer import ProcessedEvent
from shared.events import CloudEvent
from shared.events.beneficiaries import BeneficiaryMerged, BeneficiaryRegistered
from tests.conftest import Env, eventually, running
from tests.pipeline.test_outbox_consumer import publish_raw, registered_event


async def _publish_people(env: Env, specs: list[dict[str, Any]]) -> list[str]:
    ids = []
    for spec in specs:
        event = registered_event(**spec)
        ids.append(event.data["beneficiary_id"])
        await publish_raw(env.nats_url, BeneficiaryRegistered.subject(env.prefix), event)
    return ids


async def test_summary_breakdown_scope_and_public_suppression(env: Env) -> None:
    app = create_app(env.settings(IndicatorsSettings))
    officer = env.token("me_officer")
    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        specs = ([{"sex": "female", "birth_year": 1990}] * 6 + [{"sex": "male", "birth_year": 2015}] * 2
                 + [{"sex": "male", "birth_year": 1950, "governorate_pcode": "IQG01", "district_pcode": "IQG01Q03"}])
        await _publish_people(env, specs)

        async def total() -> bool:
            resp = await client.get("/api/v1/indicators/summary", headers=officer)
            return resp.json()["beneficiaries_registered"] == 9

        await eventually(total)
        ninewa = await client.get("/api/v1/indicators/summary?governorate=IQG15", headers=officer)
        assert ninewa.json()["beneficiaries_registered"] == 8
        scoped = env.token("me_officer", governorates=("IQG01",))
        assert (await client.get("/api/v1/indicators/summary", headers=scoped)).json()["beneficiaries_registered"] == 1
        hidden = await client.get("/api/v1/indicators/summary?governorate=IQG15", headers=scoped)
        assert hidden.status_code == 404 and hidden.headers["content-type"] == "application/problem+json"
        assert (await client.get("/api/v1/indicators/summary")).status_code == 401

        resp = await client.get("/api/v1/indicators/breakdown",
                                params={"indicator": "beneficiaries_registered", "by": "sex,age_group"},
                                headers=officer)
        assert resp.status_code == 200, resp.text
        assert resp.json()["items"] == [
            {"sex": "female", "age_group": "18-59", "value": 6},
            {"sex": "male", "age_group": "5-11", "value": 2},
            {"sex": "male", "age_group": "60+", "value": 1},
        ]
        public = await client.get("/api/v1/public/indicators/breakdown",
                                  params={"indicator": "beneficiaries_registered", "by": "sex"})
        # male (3) is under 5, so female is hidden with it; nobody of unknown sex (0) is shown; the total too
        assert public.json()["items"] == [{"sex": "female", "value": None, "suppressed": True},
                                          {"sex": "male", "value": None, "suppressed": True},
                                          {"sex": "unknown", "value": 0}]
        assert public.json()["total"] == 9
        bad = await client.get("/api/v1/indicators/breakdown",
                               params={"indicator": "beneficiaries_registered", "by": "sex,shoe_size"}, headers=officer)
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "by"]
        pub = (await client.get("/api/v1/public/indicators/summary")).json()
        assert set(pub) == {"individuals_directly_assisted", "individuals_benefiting_from_infrastructure",
                            "communities_reached", "as_of"}
        assert pub["as_of"].endswith("Z")


async def test_merge_arriving_before_registrations_counts_one_person(env: Env) -> None:
    app = create_app(env.settings(IndicatorsSettings))
    officer = env.token("me_officer")
    survivor, duplicate = str(uuid.uuid4()), str(uuid.uuid4())
    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        merge = CloudEvent.wrap(BeneficiaryMerged(beneficiary_id=survivor, duplicate_id=duplicate,
                                                  merged_at="2026-11-02T00:00:00Z"), source="/crp/beneficiaries")
        await publish_raw(env.nats_url, BeneficiaryMerged.subject(env.prefix), merge)
        await _publish_people(env, [{"beneficiary_id": duplicate}, {"beneficiary_id": survivor}])

        async def all_applied() -> bool:
            async with app.state.sessionmaker() as session:
                return (await session.execute(select(func.count()).select_from(ProcessedEvent))).scalar_one() == 3

        await eventually(all_applied)
        resp = await client.get("/api/v1/indicators/summary", headers=officer)
        assert resp.json()["beneficiaries_registered"] == 1
