"""Grant events in the indicators: a disbursed grant makes its person directly assisted (once, merges applied),
a reversal undoes it even when it arrives first, and the summary shows grants and amounts disbursed."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from services.indicators.app import create_app
from services.indicators.config import IndicatorsSettings
from shared.events import CloudEvent
from shared.events.beneficiaries import BeneficiaryMerged, BeneficiaryRegistered
from shared.events.grants import DisbursementMade, DisbursementReversed, GrantApproved
from tests.conftest import Env, eventually, running
from tests.pipeline.test_outbox_consumer import publish_raw, registered_event


def _facts(person: str, governorate: str = "IQG15", currency: str = "USD") -> dict[str, Any]:
    return dict(grant_id=str(uuid.uuid4()), revision=3, call_id=None, beneficiary_id=person, sector="dairy",
                currency=currency, community_id=str(uuid.uuid4()), district_pcode=f"{governorate}Q01",
                governorate_pcode=governorate)


def _made(person: str, amount: str, **kw: Any) -> dict[str, Any]:
    return dict(**_facts(person, **kw), disbursement_id=str(uuid.uuid4()), tranche=1, amount=amount,
                disbursed_on=date(2026, 11, 20))


async def test_disbursements_count_people_once_and_reversals_undo_them(env: Env) -> None:
    app = create_app(env.settings(IndicatorsSettings))
    officer = env.token("me_officer")
    async with running(app) as client:
        await app.state.bus.wait_ready(10)

        async def publish(data: Any, event_id: str | None = None) -> None:
            event = CloudEvent.wrap(data, source=f"/crp/{data.service}")
            if event_id:
                event = event.model_copy(update={"id": event_id})
            await publish_raw(env.nats_url, data.subject(env.prefix), event)

        survivor, duplicate, anbar, undone = (str(uuid.uuid4()) for _ in range(4))
        for person, governorate in ((survivor, "IQG15"), (duplicate, "IQG15"), (undone, "IQG15")):
            await publish_raw(env.nats_url, BeneficiaryRegistered.subject(env.prefix),
                              registered_event(person, governorate_pcode=governorate))
        await publish_raw(env.nats_url, BeneficiaryRegistered.subject(env.prefix),
                          registered_event(anbar, governorate_pcode="IQG01", district_pcode="IQG01Q03"))
        await publish(BeneficiaryMerged(beneficiary_id=survivor, duplicate_id=duplicate,
                                        merged_at="2026-11-21T10:00:00Z"))
        first = _made(survivor, "1000.00")
        await publish(DisbursementMade(**first), event_id="11111111-1111-4111-8111-111111111111")
        await publish(DisbursementMade(**first), event_id="11111111-1111-4111-8111-111111111111")  # redelivered
        await publish(DisbursementMade(**_made(duplicate, "500.00")))  # the same person, another grant
        await publish(DisbursementMade(**_made(anbar, "2000000.00", governorate="IQG01", currency="IQD")))
        gone = _made(undone, "700.00")
        await publish(DisbursementReversed(**gone, reversed_on=date(2026, 11, 22)))  # the reversal first
        await publish(DisbursementMade(**gone))
        await publish(GrantApproved(**{**_facts(survivor), "grant_id": first["grant_id"], "revision": 2},
                                    amount_approved="1000.00", approved_on=date(2026, 11, 19)))

        async def settled() -> dict[str, Any] | None:
            body = (await client.get("/api/v1/indicators/summary", headers=officer)).json()
            return body if body["grants_disbursed"] == 3 and body["grants_approved"] == 1 else None

        body = await eventually(settled)
        assert body["individuals_directly_assisted"] == 2  # survivor and duplicate are one person; undone none
        assert body["grant_amounts_disbursed"] == {"IQD": 2000000.0, "USD": 1500.0}
        ninewa = (await client.get("/api/v1/indicators/summary?governorate=IQG15", headers=officer)).json()
        assert ninewa["individuals_directly_assisted"] == 1 and ninewa["grant_amounts_disbursed"] == {"USD": 1500.0}
        breakdown = await client.get("/api/v1/indicators/breakdown", headers=officer,
                                     params={"indicator": "individuals_directly_assisted", "by": "governorate"})
        assert breakdown.json()["items"] == [{"governorate": "IQG01", "value": 1}, {"governorate": "IQG15", "value": 1}]

        await publish(DisbursementReversed(**first, reversed_on=date(2026, 11, 23)))
        await publish(DisbursementReversed(**_made(anbar, "1.00")
                                           | {"disbursement_id": str(uuid.uuid4())}, reversed_on=date(2026, 11, 23)))

        async def after_reversal() -> dict[str, Any] | None:
            body = (await client.get("/api/v1/indicators/summary", headers=officer)).json()
            return body if body["grant_amounts_disbursed"].get("USD") == 500.0 else None

        body = await eventually(after_reversal)
        assert body["individuals_directly_assisted"] == 2  # the duplicate's grant still counts for the survivor
        assert body["grants_disbursed"] == 2
