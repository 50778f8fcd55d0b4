"""Events of the beneficiaries service (the contract; consumers import this, never the service)."""

from __future__ import annotations

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


class CommunityCreated(EventData):
    service: ClassVar[str] = "beneficiaries"
    entity: ClassVar[str] = "community"
    action: ClassVar[str] = "created"

    community_id: str
    district_pcode: str
    governorate_pcode: str

