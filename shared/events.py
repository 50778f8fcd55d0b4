"""Domain events: the CloudEvents 1.0 envelope and the versioned, pseudonymous payload models.

This module is the event contract between services. Payloads carry ids, P-codes, sex, birth
year, displacement status, amounts and categories: never names, phones, national IDs, contact
details or free text. Every payload model forbids extra fields so nothing else slips in.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.db import UtcDatetime, utcnow


class EventData(BaseModel):
    """Base of every event payload. Subclasses name their service, entity, action and version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: ClassVar[str]
    entity: ClassVar[str]
    action: ClassVar[str]
    version: ClassVar[int] = 1

    @classmethod
    def event_type(cls) -> str:
        """CloudEvents ``type``, independent of the subject prefix: ``crp.<service>.<entity>.<action>.v<N>``."""
        return f"crp.{cls.service}.{cls.entity}.{cls.action}.v{cls.version}"

    @classmethod
    def subject(cls, prefix: str = "crp") -> str:
        return f"{prefix}.{cls.service}.{cls.entity}.{cls.action}.v{cls.version}"


class CloudEvent(BaseModel):
    """CloudEvents 1.0 structured JSON envelope."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    time: UtcDatetime = Field(default_factory=utcnow)
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]

    @classmethod
    def wrap(cls, data: EventData, *, source: str, subject: str | None = None) -> CloudEvent:
        return cls(source=source, type=data.event_type(), subject=subject,
                   data=data.model_dump(mode="json"))

    def parse(self, model: type[EventData]) -> Any:
        return model.model_validate(self.data)


Sex = Literal["female", "male"]
DisplacementStatus = Literal["idp", "returnee", "host_community"]


# -- beneficiaries --------------------------------------------------------------------------------
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


EVENT_MODELS: dict[str, type[EventData]] = {
    m.event_type(): m
    for m in (BeneficiaryRegistered, BeneficiaryUpdated, BeneficiaryMerged, CommunityCreated)
}


def age_group(birth_year: int, on: date | datetime) -> str:
    """Standard humanitarian age bands, computed at the date of the figure."""
    age = on.year - birth_year
    if age < 5:
        return "0-4"
    if age < 18:
        return "5-17"
    if age < 60:
        return "18-59"
    return "60+"
