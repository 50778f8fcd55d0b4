"""Indicators handlers for the training service's events (``shared.events.training``).

Order-independent, like every handler (``tests/indicators/test_projection_order.py``):

- an enrolment row is created by whichever of its events arrives first; its ``status`` follows the newest
  ``revision`` (the enrolment's version after the change);
- a completion is final: it sets ``completed_on`` and records the person's direct assistance in the reach
  ledger (source ``enrolment:<id>``, kind ``training``, pillar human capital, or good governance for local
  authority staff, placed at the course) once, whenever it arrives, before or after the enrolment's creation;
  the ledger applies merges, so a person with a grant and a training, or trained under two merged records,
  counts once;
- a follow-up is inserted once (redeliveries change nothing).
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators.models import TrainingEnrolment, TrainingFollowUp
from services.indicators.reach import record_assistance
from shared.consumer import Handler
from shared.events import CloudEvent
from shared.events.training import (
    EnrolmentCompleted,
    EnrolmentCreated,
    EnrolmentDropped,
    EnrolmentPromoted,
    EnrolmentSnapshot,
    FollowUpRecorded,
)

_SNAPSHOT_FIELDS = ("course_id", "skill_area", "audience", "community_id", "district_pcode", "governorate_pcode")


async def _apply(session: AsyncSession, data: EnrolmentSnapshot) -> TrainingEnrolment:
    row = await session.get(TrainingEnrolment, data.enrolment_id)
    if row is None:
        row = TrainingEnrolment(enrolment_id=data.enrolment_id, person_id=data.beneficiary_id, revision=data.revision,
                                status=data.status, **{name: getattr(data, name) for name in _SNAPSHOT_FIELDS})
        session.add(row)
    elif data.revision > row.revision:
        row.revision, row.status = data.revision, data.status
        for name in _SNAPSHOT_FIELDS:
            setattr(row, name, getattr(data, name))
    return row


async def on_enrolment_created(session: AsyncSession, event: CloudEvent) -> None:
    await _apply(session, event.parse(EnrolmentCreated))


async def on_enrolment_promoted(session: AsyncSession, event: CloudEvent) -> None:
    await _apply(session, event.parse(EnrolmentPromoted))


async def on_enrolment_dropped(session: AsyncSession, event: CloudEvent) -> None:
    await _apply(session, event.parse(EnrolmentDropped))


async def on_enrolment_completed(session: AsyncSession, event: CloudEvent) -> None:
    data: EnrolmentCompleted = event.parse(EnrolmentCompleted)
    row = await _apply(session, data)
    row.completed_on = data.completed_on
    # Training for local authority staff builds planning capacity (good governance); for community members,
    # skills (human capital).
    pillar = "good_governance" if data.audience == "local_authority_staff" else "human_capital"
    await record_assistance(session, source_id=f"enrolment:{data.enrolment_id}", person_id=data.beneficiary_id,
                            kind="training", pillar=pillar, on=data.completed_on, community_id=data.community_id,
                            district_pcode=data.district_pcode, governorate_pcode=data.governorate_pcode)


async def on_follow_up_recorded(session: AsyncSession, event: CloudEvent) -> None:
    data: FollowUpRecorded = event.parse(FollowUpRecorded)
    if await session.get(TrainingFollowUp, data.follow_up_id) is None:
        session.add(TrainingFollowUp(follow_up_id=data.follow_up_id, enrolment_id=data.enrolment_id,
                                     person_id=data.beneficiary_id, months_after=data.months_after,
                                     employment_status=data.employment_status, income_band=data.income_band,
                                     recorded_on=data.recorded_on, governorate_pcode=data.governorate_pcode))


TRAINING_HANDLERS: dict[str, Handler] = {
    EnrolmentCreated.event_type(): on_enrolment_created,
    EnrolmentPromoted.event_type(): on_enrolment_promoted,
    EnrolmentDropped.event_type(): on_enrolment_dropped,
    EnrolmentCompleted.event_type(): on_enrolment_completed,
    FollowUpRecorded.event_type(): on_follow_up_recorded,
}
