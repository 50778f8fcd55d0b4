"""Training in the indicators: a completed training makes its person directly assisted once (whatever grants
they also had, merges applied, in any order); trainings completed; the share employed at follow-up."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from services.indicators import service as svc
from services.indicators.app import service
from services.indicators.config import IndicatorsSettings
from services.indicators.reach import record_assistance
from shared.consumer import Outcome, apply_or_dead_letter
from shared.db import create_engine, create_sessionmaker
from shared.events import CloudEvent, EventData
from shared.events.beneficiaries import BeneficiaryMerged
from shared.events.training import EnrolmentCompleted, EnrolmentCreated, FollowUpRecorded
from tests.conftest import Env
from tests.pipeline.test_outbox_consumer import registered_event


def _wrap(data: EventData) -> CloudEvent:
    return CloudEvent.wrap(data, source=f"/crp/{data.service}")


def _enrolment(person: str, governorate: str = "IQG15") -> dict[str, Any]:
    return dict(enrolment_id=str(uuid.uuid4()), course_id=str(uuid.uuid4()), beneficiary_id=person,
                skill_area="tailoring", audience="community_members", community_id=str(uuid.uuid4()),
                district_pcode=f"{governorate}Q01", governorate_pcode=governorate)


def _created(e: dict[str, Any]) -> CloudEvent:
    return _wrap(EnrolmentCreated(**e, revision=1, status="enrolled", enrolled_on=date(2026, 1, 1)))


def _completed(e: dict[str, Any]) -> CloudEvent:
    return _wrap(EnrolmentCompleted(**e, revision=5, status="completed", completed_on=date(2026, 3, 1),
                                    certified=True, attendance_percent=90, overridden=False))


def _follow_up(e: dict[str, Any], months: int, status: str) -> CloudEvent:
    return _wrap(FollowUpRecorded(follow_up_id=str(uuid.uuid4()), enrolment_id=e["enrolment_id"],
                                  beneficiary_id=e["beneficiary_id"], months_after=months, employment_status=status,
                                  income_band="under_250k", recorded_on=date(2026, 6, 1), skill_area="tailoring",
                                  governorate_pcode=e["governorate_pcode"]))


async def test_a_completed_training_counts_its_person_once(env: Env) -> None:
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

        person, duplicate = registered_event(), registered_event()
        erbil = registered_event(governorate_pcode="IQG07", district_pcode="IQG07Q01")
        p, d, r = (e.data["beneficiary_id"] for e in (person, duplicate, erbil))
        await apply(person, duplicate, erbil)
        empty = await summary()
        assert (empty["trainings_completed"], empty["share_employed_at_follow_up"]) == (0, None)
        # the person also received a grant (a disbursement's assistance row, as the grants handlers add it)
        async with sessionmaker() as session, session.begin():
            await record_assistance(session, source_id=f"disbursement:{uuid.uuid4()}", person_id=p, kind="grant",
                                    pillar="local_economies", on=date(2026, 2, 1), governorate_pcode="IQG15")
        assert (await summary())["individuals_directly_assisted"] == 1
        own, merged, other = _enrolment(p), _enrolment(d), _enrolment(r, "IQG07")
        # the completion arrives before its enrolment's creation, and twice
        await apply(_completed(own), _created(own), _completed(own))
        figures = await summary()
        assert (figures["individuals_directly_assisted"], figures["trainings_completed"]) == (1, 1)
        # a duplicate record, later merged into the person, completed another course: still one person
        await apply(_completed(merged))
        assert (await summary())["individuals_directly_assisted"] == 2
        await apply(_wrap(BeneficiaryMerged(beneficiary_id=p, duplicate_id=d, merged_at="2026-03-02T00:00:00Z")))
        figures = await summary()
        assert (figures["individuals_directly_assisted"], figures["trainings_completed"]) == (1, 2)
        # an enrolment that is only created assists nobody
        await apply(_created(other))
        assert (await summary())["individuals_directly_assisted"] == 1
        await apply(_completed(other))
        assert (await summary())["individuals_directly_assisted"] == 2
        assert (await summary(frozenset({"IQG07"})))["trainings_completed"] == 1
        # the share employed: the latest follow-up of each completed enrolment that has one
        await apply(_follow_up(own, 3, "unemployed"), _follow_up(own, 6, "self_employed"),
                    _follow_up(other, 3, "unemployed"))
        figures = await summary()
        assert figures["share_employed_at_follow_up"] == 0.5  # own: self-employed at 6 months; other: unemployed
        assert (await summary(frozenset({"IQG07"})))["share_employed_at_follow_up"] == 0.0
        assert (await summary(frozenset({"IQG01"})))["share_employed_at_follow_up"] is None
    finally:
        await engine.dispose()
