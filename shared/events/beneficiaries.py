"""Events of the beneficiaries service (the contract; consumers import this, never the service)."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from shared.db import UtcDatetime
from shared.events import DisplacementStatus, EventData, Sex


class _BeneficiaryEvent(EventData):
    service: ClassVar[str] = "beneficiaries"
    entity: ClassVar[str] = "beneficiary"


class _BeneficiarySnapshot(_BeneficiaryEvent):
    """The pseudonymous facts about a person that disaggregation needs; ``revision`` orders them."""

    beneficiary_id: str
    revision: int
    sex: Sex
    birth_year: int
    displacement_status: DisplacementStatus
    community_id: str
    household_id: str | None = None
    district_pcode: str
    governorate_pcode: str
    has_disability: bool


class BeneficiaryRegistered(_BeneficiarySnapshot):
    action: ClassVar[str] = "registered"

    registered_at: UtcDatetime


class BeneficiaryUpdated(_BeneficiarySnapshot):
    action: ClassVar[str] = "updated"

    changed_fields: list[str]


class BeneficiaryMerged(_BeneficiaryEvent):
    action: ClassVar[str] = "merged"

    beneficiary_id: str
    duplicate_id: str
    merged_at: UtcDatetime


class BeneficiaryConsentWithdrawn(_BeneficiaryEvent):
    """The person withdrew their consent on ``withdrawn_on``.

    Services that record assistance (grants, training, ...) refuse new work for this person with 409
    from then on: they ask the beneficiaries service (``consent.given`` is false on the record) or keep
    a copy fed by this event. What was recorded before stays counted: the assistance happened, and the
    indicators hold no personal data.
    """

    action: ClassVar[str] = "consent_withdrawn"

    beneficiary_id: str
    revision: int
    withdrawn_on: date


class CommunityCreated(EventData):
    service: ClassVar[str] = "beneficiaries"
    entity: ClassVar[str] = "community"
    action: ClassVar[str] = "created"

    community_id: str
    district_pcode: str
    governorate_pcode: str



class BeneficiaryErased(_BeneficiaryEvent):
    """The person's personal data was erased on request or at the end of its retention (``reason``:
    ``request`` or ``retention``). The record stays as an anonymous count (sex, birth year, place): the
    figures do not change. Services that hold personal data about the person clear it."""

    action: ClassVar[str] = "erased"

    beneficiary_id: str
    revision: int
    reason: str
