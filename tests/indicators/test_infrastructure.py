"""Infrastructure in the indicators: the contract's figure (the sum of completed catchments), communities reached
by a completed project, projects completed (by sector), communities with a completed assessment and the estimate
of distinct people benefiting; in any order, redeliveries included, scoped by the project's governorate."""

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
from shared.events.beneficiaries import CommunityCreated
from shared.events.infrastructure import (
    AssessmentCompleted,
    ProjectCreated,
    ProjectHandedOver,
    ProjectProgressRecorded,
    ProjectStatusChanged,
)
from tests.conftest import Env


def _wrap(data: EventData) -> CloudEvent:
    return CloudEvent.wrap(data, source=f"/crp/{data.service}")


def _community(district: str) -> tuple[str, CloudEvent]:
    community_id = str(uuid.uuid4())
    return community_id, _wrap(CommunityCreated(community_id=community_id, district_pcode=district,
                                                governorate_pcode=district[:5]))


class Project:
    """One project's events as the infrastructure service emits them: whole snapshots, the version growing."""

    def __init__(self, community_id: str, district: str, sector: str, catchment: int) -> None:
        self.revision = 1
        self.snap: dict[str, Any] = dict(
            project_id=str(uuid.uuid4()), status="planned", sector=sector, community_id=community_id,
            district_pcode=district, governorate_pcode=district[:5], answers_priority=True,
            catchment_population=catchment, progress_percent=0)

    def created(self) -> CloudEvent:
        return _wrap(ProjectCreated(**self.snap, revision=1))

    def move(self, status: str, on: date) -> CloudEvent:
        previous, self.revision = self.snap["status"], self.revision + 1
        self.snap["status"] = status
        self.snap.update({"in_progress": {"started_on": on}, "completed": {"completed_on": on, "progress_percent": 100},
                          "handed_over": {"handed_over_on": on}, "cancelled": {"cancelled_on": on}}[status])
        model = ProjectHandedOver if status == "handed_over" else ProjectStatusChanged
        return _wrap(model(**self.snap, revision=self.revision, previous_status=previous, changed_on=on))

    def progress(self, percent: int) -> CloudEvent:
        self.revision += 1
        self.snap["progress_percent"] = percent
        return _wrap(ProjectProgressRecorded(**self.snap, revision=self.revision, progress_id=str(uuid.uuid4()),
                                             reported_on=date(2026, 10, 15)))


def _assessed(community_id: str, district: str) -> CloudEvent:
    return _wrap(AssessmentCompleted(
        assessment_id=str(uuid.uuid4()), community_id=community_id, district_pcode=district,
        governorate_pcode=district[:5], assessed_on=date(2026, 9, 1), completed_on=date(2026, 9, 2),
        participants_female=10, participants_male=12, participants_idp=4, participants_returnee=6,
        participants_host_community=12, local_authority_participated=True, priority_sectors=["water"],
        risks_identified=1))


async def test_completed_projects_move_the_infrastructure_figures(env: Env) -> None:
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

        mosul, mosul_created = _community("IQG15Q05")
        ramadi, ramadi_created = _community("IQG01Q03")
        await apply(mosul_created, ramadi_created)
        empty = await summary()
        assert (empty["projects_completed"], empty["projects_completed_by_sector"],
                empty["communities_with_completed_assessment"],
                empty["individuals_benefiting_from_infrastructure_estimate"]) == (0, {}, 0, 0)
        base = (empty["individuals_benefiting_from_infrastructure"], empty["communities_reached"])

        # two projects in one community (overlapping catchments), one in another, one cancelled, one ongoing
        network, school = Project(mosul, "IQG15Q05", "water", 1200), Project(mosul, "IQG15Q05", "education", 400)
        road, clinic = Project(ramadi, "IQG01Q03", "roads", 5000), Project(ramadi, "IQG01Q03", "health", 800)
        dropped = Project(mosul, "IQG15Q05", "water", 3000)
        started = network.move("in_progress", date(2026, 10, 1))
        done = network.move("completed", date(2026, 11, 1))
        handed = network.move("handed_over", date(2026, 11, 5))
        # the handover arrives first, then the rest, the completion twice: the catchment counts once
        await apply(handed, done, network.created(), started, done)
        figures = await summary()
        assert (figures["individuals_benefiting_from_infrastructure"], figures["communities_reached"]) == (
            base[0] + 1200, base[1] + 1)
        assert (figures["projects_completed"], figures["projects_completed_by_sector"]) == (1, {"water": 1})
        # a cancelled project and one in progress count nothing
        await apply(dropped.created(), dropped.move("cancelled", date(2026, 10, 2)), clinic.created(),
                    clinic.move("in_progress", date(2026, 10, 3)), clinic.progress(40))
        assert (await summary())["projects_completed"] == 1
        await apply(school.move("in_progress", date(2026, 10, 1)), school.move("completed", date(2026, 11, 2)),
                    road.created(), road.move("in_progress", date(2026, 10, 1)),
                    road.move("completed", date(2026, 11, 3)))
        figures = await summary()
        assert figures["individuals_benefiting_from_infrastructure"] == base[0] + 1200 + 400 + 5000
        assert figures["individuals_benefiting_from_infrastructure_estimate"] == 1200 + 5000  # largest per community
        assert figures["communities_reached"] == base[1] + 2
        assert figures["projects_completed_by_sector"] == {"education": 1, "roads": 1, "water": 1}
        # a late, lower revision (the progress before completion) changes nothing
        await apply(clinic.progress(60), clinic.move("completed", date(2026, 11, 20)))
        older = Project(ramadi, "IQG01Q03", "health", 800)
        older.snap, older.revision = dict(clinic.snap, status="in_progress", completed_on=None), 2
        await apply(older.progress(10))
        assert (await summary())["projects_completed_by_sector"]["health"] == 1
        # assessments: distinct communities, once each
        first = _assessed(mosul, "IQG15Q05")
        await apply(first, first, _assessed(mosul, "IQG15Q05"), _assessed(ramadi, "IQG01Q03"))
        assert (await summary())["communities_with_completed_assessment"] == 2
        # scope: the project's governorate
        ninewa = await summary(frozenset({"IQG15"}))
        assert (ninewa["projects_completed"], ninewa["projects_completed_by_sector"],
                ninewa["individuals_benefiting_from_infrastructure"],
                ninewa["individuals_benefiting_from_infrastructure_estimate"],
                ninewa["communities_with_completed_assessment"]) == (2, {"education": 1, "water": 1}, 1600, 1200, 1)
        anbar = await summary(frozenset({"IQG01"}))  # the road and the clinic serve one community
        assert (anbar["projects_completed"], anbar["individuals_benefiting_from_infrastructure_estimate"]) == (2, 5000)
    finally:
        await engine.dispose()
