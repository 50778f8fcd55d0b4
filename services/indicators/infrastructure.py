"""Indicators handlers for the infrastructure service's events (``shared.events.infrastructure``).

Order-independent, like every handler (``tests/indicators/test_projection_order.py``): every project event is a
full snapshot with the project's ``revision``; the row is created by whichever event arrives first and then takes
each newer revision's snapshot whole, so the final row is the newest snapshot whatever the order (a
``handed_over`` seen before the ``completed`` already carries ``completed_on`` and the catchment). A completed
assessment is inserted once (redeliveries change nothing).

The figures (``service.infrastructure_figures`` and the summary's ``individuals_benefiting_from_infrastructure``
and ``communities_reached``) count a project once it has a ``completed_on``: completed or handed over.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators.models import InfrastructureAssessment, InfrastructureProject
from shared.consumer import Handler
from shared.events import CloudEvent
from shared.events.infrastructure import (
    AssessmentCompleted,
    ProjectCreated,
    ProjectHandedOver,
    ProjectProgressRecorded,
    ProjectSnapshot,
    ProjectStatusChanged,
)

_SNAPSHOT_FIELDS = ("community_id", "catchment_population", "completed_on", "revision", "status", "sector",
                    "district_pcode", "governorate_pcode", "answers_priority", "catchment_female", "catchment_male",
                    "catchment_idp", "catchment_returnee", "catchment_host_community", "progress_percent",
                    "started_on", "handed_over_on", "cancelled_on")


def _snapshot(model: type[ProjectSnapshot]) -> Handler:
    async def handle(session: AsyncSession, event: CloudEvent) -> None:
        data = event.parse(model)
        row = await session.get(InfrastructureProject, data.project_id)
        if row is None:
            session.add(InfrastructureProject(project_id=data.project_id,
                                              **{name: getattr(data, name) for name in _SNAPSHOT_FIELDS}))
        elif data.revision > row.revision:
            for name in _SNAPSHOT_FIELDS:
                setattr(row, name, getattr(data, name))

    return handle


async def on_assessment_completed(session: AsyncSession, event: CloudEvent) -> None:
    data: AssessmentCompleted = event.parse(AssessmentCompleted)
    if await session.get(InfrastructureAssessment, data.assessment_id) is None:
        session.add(InfrastructureAssessment(
            assessment_id=data.assessment_id, community_id=data.community_id, district_pcode=data.district_pcode,
            governorate_pcode=data.governorate_pcode, completed_on=data.completed_on,
            participants_female=data.participants_female, participants_male=data.participants_male))


INFRASTRUCTURE_HANDLERS: dict[str, Handler] = {
    AssessmentCompleted.event_type(): on_assessment_completed,
    ProjectCreated.event_type(): _snapshot(ProjectCreated),
    ProjectStatusChanged.event_type(): _snapshot(ProjectStatusChanged),
    ProjectHandedOver.event_type(): _snapshot(ProjectHandedOver),
    ProjectProgressRecorded.event_type(): _snapshot(ProjectProgressRecorded),
}
