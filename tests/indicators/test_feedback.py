"""Feedback in the indicators: cases received (sensitive ones only as one aggregate bucket), the share resolved
within service levels (newest snapshot wins, whatever the arrival order), active resource centres, activity
participants and communities with reconciliation; governorate scope; redelivery counts once."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from services.indicators import service as svc
from services.indicators.app import service
from services.indicators.config import IndicatorsSettings
from shared.consumer import Outcome, apply_or_dead_letter
from shared.db import create_engine, create_sessionmaker
from shared.events import CloudEvent, EventData
from shared.events.feedback import (
    CommunityActivityRecorded,
    FeedbackReceived,
    FeedbackStatusChanged,
    ResourceCentreCreated,
    ResourceCentreUpdated,
)
from tests.conftest import Env


def _wrap(data: EventData) -> CloudEvent:
    return CloudEvent.wrap(data, source=f"/crp/{data.service}")


def _case(category: str, governorate: str | None = "IQG15", **extra: Any) -> dict[str, Any]:
    return dict(feedback_id=str(uuid.uuid4()), revision=1, status="received", category=category, channel="sms",
                sensitive=category in ("sea", "fraud_corruption", "staff_misconduct"),
                community_id=str(uuid.uuid4()) if governorate else None,
                district_pcode=f"{governorate}Q01" if governorate else None, governorate_pcode=governorate,
                resource_centre_id=None, received_on=date(2026, 5, 1), acknowledged_within_service_level=None,
                resolved_within_service_level=None, **extra)


def _moved(case: dict[str, Any], revision: int, status: str, resolved: bool | None) -> CloudEvent:
    return _wrap(FeedbackStatusChanged(**{**case, "revision": revision, "status": status,
                                          "acknowledged_within_service_level": True,
                                          "resolved_within_service_level": resolved},
                                       previous_status="received", changed_on=date(2026, 5, 2)))


def _activity(kind: str, community: str, total: int, governorate: str = "IQG15") -> CloudEvent:
    return _wrap(CommunityActivityRecorded(
        activity_id=str(uuid.uuid4()), kind=kind, community_id=community, district_pcode=f"{governorate}Q01",
        governorate_pcode=governorate, resource_centre_id=None, held_on=date(2026, 5, 3), participants_total=total,
        participants_female=total // 2, participants_male=total - total // 2, participants_idp=0,
        participants_returnee=0, participants_host_community=0))


async def test_feedback_figures(env: Env) -> None:
    settings = env.settings(IndicatorsSettings)
    engine = create_engine(settings)
    try:
        await service.migrate(engine, settings)
        sessionmaker = create_sessionmaker(engine)
        applier = service.applier()

        async def apply(*events: CloudEvent) -> None:
            async with sessionmaker() as session, session.begin():
                for event in events:
                    outcome = await apply_or_dead_letter(session, applier, subject=event.type,
                                                         payload=event.model_dump_json().encode(), attempt=1,
                                                         max_attempts=1)
                    assert outcome is Outcome.SETTLED

        async def summary(governorates: frozenset[str] | None = None) -> dict[str, Any]:
            async with sessionmaker() as session:
                return await svc.summary(session=session, governorates=governorates)

        empty = await summary()
        assert (empty["feedback_received"], empty["share_feedback_resolved_within_service_levels"],
                empty["feedback_received_by_category"]) == (0, None, {})
        quick, late, abuse, fraud = (_case("information_request"), _case("major_dissatisfaction", "IQG07"),
                                     _case("sea"), _case("fraud_corruption"))
        nowhere = _case("appreciation", None)
        # the late case's final resolution arrives before its earlier one: the newest revision wins
        await apply(_moved(late, 5, "resolved", False), *(_wrap(FeedbackReceived(**c))
                                                           for c in (quick, late, abuse, fraud, nowhere)))
        received = _wrap(FeedbackReceived(**quick))
        await apply(received, received)  # a redelivery counts once
        await apply(_moved(late, 3, "resolved", True), _moved(quick, 3, "closed", True),
                    _moved(abuse, 4, "resolved", True))
        figures = await summary()
        assert figures["feedback_received"] == 5
        assert figures["feedback_received_by_category"] == {  # sensitive categories only as one bucket
            "appreciation": 1, "information_request": 1, "major_dissatisfaction": 1, "sensitive": 2}
        assert figures["share_feedback_resolved_within_service_levels"] == round(2 / 3, 4)
        ninewa = await summary(frozenset({"IQG15"}))  # the case without a place counts programme-wide only
        assert (ninewa["feedback_received"], ninewa["share_feedback_resolved_within_service_levels"]) == (3, 1.0)

        centre = dict(resource_centre_id=str(uuid.uuid4()), community_id=str(uuid.uuid4()), district_pcode="IQG15Q01",
                      governorate_pcode="IQG15")
        other = {**centre, "resource_centre_id": str(uuid.uuid4())}
        # closed (revision 2) arrives before its creation; the other centre stays open
        await apply(_wrap(ResourceCentreUpdated(**centre, revision=2, active=False)),
                    _wrap(ResourceCentreCreated(**centre, revision=1, active=True)),
                    _wrap(ResourceCentreCreated(**other, revision=1, active=True)))
        assert (await summary())["resource_centres_active"] == 1
        await apply(_wrap(ResourceCentreUpdated(**centre, revision=3, active=True)))
        assert (await summary())["resource_centres_active"] == 2

        village, town = str(uuid.uuid4()), str(uuid.uuid4())
        first = _activity("reconciliation", village, 30)
        await apply(first, first, _activity("reconciliation", village, 12), _activity("dialogue", town, 8),
                    _activity("reconciliation", town, 5, "IQG07"))
        figures = await summary()
        assert (figures["community_activity_participants"], figures["communities_with_reconciliation_activity"]) == (
            55, 2)
        ninewa = await summary(frozenset({"IQG15"}))
        assert (ninewa["community_activity_participants"], ninewa["communities_with_reconciliation_activity"]) == (
            50, 1)
    finally:
        await engine.dispose()
