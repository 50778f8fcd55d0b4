"""Indicators handlers for the feedback service's events (``shared.events.feedback``).

Order-independent, like every handler (``tests/indicators/test_projection_order.py``): a case or a resource
centre row is created by whichever of its events arrives first and then follows the newest ``revision`` (every
event carries the whole snapshot); an activity is inserted once. No text is ever received.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators.models import CommunityActivityFact, FeedbackCase, FeedbackResourceCentre
from shared.consumer import Handler
from shared.events import CloudEvent
from shared.events.feedback import (
    CommunityActivityRecorded,
    FeedbackReceived,
    FeedbackSnapshot,
    FeedbackStatusChanged,
    ResourceCentreCreated,
    ResourceCentreSnapshot,
    ResourceCentreUpdated,
)

_CASE_FIELDS = ("status", "category", "channel", "sensitive", "community_id", "governorate_pcode",
                "resource_centre_id", "received_on", "resolved_within_service_level")


async def _apply_case(session: AsyncSession, data: FeedbackSnapshot) -> None:
    row = await session.get(FeedbackCase, data.feedback_id)
    if row is None:
        session.add(FeedbackCase(feedback_id=data.feedback_id, revision=data.revision,
                                 **{name: getattr(data, name) for name in _CASE_FIELDS}))
    elif data.revision > row.revision:
        row.revision = data.revision
        for name in _CASE_FIELDS:
            setattr(row, name, getattr(data, name))


async def on_feedback_received(session: AsyncSession, event: CloudEvent) -> None:
    await _apply_case(session, event.parse(FeedbackReceived))


async def on_feedback_status_changed(session: AsyncSession, event: CloudEvent) -> None:
    await _apply_case(session, event.parse(FeedbackStatusChanged))


async def _apply_centre(session: AsyncSession, data: ResourceCentreSnapshot) -> None:
    row = await session.get(FeedbackResourceCentre, data.resource_centre_id)
    if row is None:
        session.add(FeedbackResourceCentre(resource_centre_id=data.resource_centre_id, revision=data.revision,
                                           community_id=data.community_id, governorate_pcode=data.governorate_pcode,
                                           active=data.active))
    elif data.revision > row.revision:
        row.revision, row.active = data.revision, data.active
        row.community_id, row.governorate_pcode = data.community_id, data.governorate_pcode


async def on_resource_centre_created(session: AsyncSession, event: CloudEvent) -> None:
    await _apply_centre(session, event.parse(ResourceCentreCreated))


async def on_resource_centre_updated(session: AsyncSession, event: CloudEvent) -> None:
    await _apply_centre(session, event.parse(ResourceCentreUpdated))


async def on_community_activity_recorded(session: AsyncSession, event: CloudEvent) -> None:
    data: CommunityActivityRecorded = event.parse(CommunityActivityRecorded)
    if await session.get(CommunityActivityFact, data.activity_id) is None:
        session.add(CommunityActivityFact(
            activity_id=data.activity_id, kind=data.kind, community_id=data.community_id,
            governorate_pcode=data.governorate_pcode, held_on=data.held_on, participants_total=data.participants_total,
            participants_female=data.participants_female, participants_male=data.participants_male))


FEEDBACK_HANDLERS: dict[str, Handler] = {
    FeedbackReceived.event_type(): on_feedback_received,
    FeedbackStatusChanged.event_type(): on_feedback_status_changed,
    ResourceCentreCreated.event_type(): on_resource_centre_created,
    ResourceCentreUpdated.event_type(): on_resource_centre_updated,
    CommunityActivityRecorded.event_type(): on_community_activity_recorded,
}
