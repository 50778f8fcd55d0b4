"""Event handlers that keep the projections. Each runs inside the consumer's transaction.

Events arrive at least once and in any order, even for one person (``shared.outbox``); every handler
is written so that the final state does not depend on it (revisions for snapshots, placeholders for
people not seen yet, merges followed to the current survivor), and
``tests/indicators/test_projection_order.py`` proves it for the whole handler set.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators import reach
from services.indicators.feedback import FEEDBACK_HANDLERS
from services.indicators.grants import GRANT_HANDLERS
from services.indicators.infrastructure import INFRASTRUCTURE_HANDLERS
from services.indicators.models import CommunityRef, Person
from services.indicators.training import TRAINING_HANDLERS
from shared.consumer import Handler
from shared.events import CloudEvent
from shared.events.beneficiaries import (
    BeneficiaryConsentWithdrawn,
    BeneficiaryErased,
    BeneficiaryMerged,
    BeneficiaryRegistered,
    BeneficiaryUpdated,
    CommunityCreated,
)

_SNAPSHOT_FIELDS = ("sex", "birth_year", "displacement_status", "has_disability", "community_id", "household_id",
                    "district_pcode", "governorate_pcode")


async def _person(session: AsyncSession, beneficiary_id: str) -> Person:
    person = await session.get(Person, beneficiary_id)
    if person is None:
        person = Person(beneficiary_id=beneficiary_id)
        session.add(person)
    return person


def _apply_snapshot(person: Person, data: BeneficiaryRegistered | BeneficiaryUpdated) -> None:
    if data.revision > person.revision:
        for name in _SNAPSHOT_FIELDS:
            setattr(person, name, getattr(data, name))
        person.revision = data.revision


async def on_registered(session: AsyncSession, event: CloudEvent) -> None:
    data: BeneficiaryRegistered = event.parse(BeneficiaryRegistered)
    person = await _person(session, data.beneficiary_id)
    before = reach.registered_key(person)
    _apply_snapshot(person, data)
    person.registered = True
    person.registered_at = data.registered_at
    reach.derive_registration(person)
    await reach.count_registered(session, before, reach.registered_key(person))
    await session.flush()
    await reach.refresh(session, data.beneficiary_id)


async def on_updated(session: AsyncSession, event: CloudEvent) -> None:
    data: BeneficiaryUpdated = event.parse(BeneficiaryUpdated)
    person = await _person(session, data.beneficiary_id)
    before = reach.registered_key(person)
    _apply_snapshot(person, data)
    person.registered = True  # an update proves the registration happened, even if not yet seen
    reach.derive_registration(person)
    await reach.count_registered(session, before, reach.registered_key(person))
    await session.flush()
    await reach.refresh(session, data.beneficiary_id)


async def on_merged(session: AsyncSession, event: CloudEvent) -> None:
    data: BeneficiaryMerged = event.parse(BeneficiaryMerged)
    survivor = await reach.survivor(session, data.beneficiary_id)
    if survivor == data.duplicate_id:
        return
    duplicate = await _person(session, data.duplicate_id)
    before = reach.registered_key(duplicate)
    previous = duplicate.merged_into_id  # merged already (into another record): that one loses its assistance
    duplicate.merged_into_id = survivor
    await reach.count_registered(session, before, None)
    await session.flush()
    # Whatever had been folded into the duplicate now points straight at the survivor.
    await session.execute(update(Person).where(Person.merged_into_id == data.duplicate_id)
                          .values(merged_into_id=survivor))
    # The duplicate's (and its former duplicates') assistance now counts for the survivor, once.
    await reach.refresh(session, data.duplicate_id)
    if previous is not None and previous != survivor:
        await reach.refresh(session, previous)


async def on_community_created(session: AsyncSession, event: CloudEvent) -> None:
    data: CommunityCreated = event.parse(CommunityCreated)
    if await session.get(CommunityRef, data.community_id) is None:
        session.add(CommunityRef(community_id=data.community_id, district_pcode=data.district_pcode,
                                 governorate_pcode=data.governorate_pcode))


async def on_consent_withdrawn(session: AsyncSession, event: CloudEvent) -> None:
    """Nothing changes: the person stays registered and assistance already given stays counted (the
    projection holds no personal data). Handled, so the event is recorded instead of parked."""


async def on_erased(session: AsyncSession, event: CloudEvent) -> None:
    """Nothing changes: the projection never held the person's personal data, and the counts stay."""


HANDLERS: dict[str, Handler] = {
    BeneficiaryRegistered.event_type(): on_registered,
    BeneficiaryUpdated.event_type(): on_updated,
    BeneficiaryMerged.event_type(): on_merged,
    CommunityCreated.event_type(): on_community_created,
    BeneficiaryConsentWithdrawn.event_type(): on_consent_withdrawn,
    BeneficiaryErased.event_type(): on_erased,
    **TRAINING_HANDLERS,
    **GRANT_HANDLERS,
    **FEEDBACK_HANDLERS,
    **INFRASTRUCTURE_HANDLERS,
}

