"""Domain events: the CloudEvents 1.0 envelope and the base of the versioned, pseudonymous payloads.

This package is the event contract between services: one payload module per producing service
(``shared.events.beneficiaries``, ...), so a consumer imports the contract, never a producer.
Payloads carry ids, P-codes, sex, birth year, displacement status, amounts and categories: never
names, phones, national IDs, contact details or free text. Producers validate strictly (extra
fields are refused when an event is built); consumers are tolerant readers (``CloudEvent.parse``
ignores fields it does not know, so a newer producer never breaks an older consumer).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar, Literal, TypeVar

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


E = TypeVar("E", bound=EventData)

Sex = Literal["female", "male"]
DisplacementStatus = Literal["idp", "returnee", "host_community"]


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
    def wrap(cls, data: EventData, *, source: str, subject: str | None = None,
             traceparent: str | None = None) -> CloudEvent:
        """The envelope of ``data``; ``traceparent`` is the CloudEvents distributed tracing extension (the W3C
        trace context of the work that emitted it), left out when there is none."""
        extensions = {"traceparent": traceparent} if traceparent else {}
        return cls(source=source, type=data.event_type(), subject=subject,
                   data=data.model_dump(mode="json"), **extensions)

    @property
    def traceparent(self) -> str | None:
        """The producer's W3C trace context (CloudEvents distributed tracing extension), if it sent one."""
        value = (self.model_extra or {}).get("traceparent")
        return value if isinstance(value, str) else None

    def parse(self, model: type[E]) -> E:
        """The payload as ``model``, ignoring fields this version does not know (tolerant reader)."""
        known = model.model_fields
        return model.model_validate({k: v for k, v in self.data.items() if k in known})


AGE_GROUPS = ("0-4", "5-11", "12-17", "18-59", "60+")


def age_group(birth_year: int, on: date | datetime) -> str:
    """The programme's age bands (0-4, 5-11, 12-17, 18-59, 60+), at the date given (events carry the birth
    year only, so the age is the difference of years)."""
    age = on.year - birth_year
    if age < 5:
        return "0-4"
    if age < 12:
        return "5-11"
    if age < 18:
        return "12-17"
    if age < 60:
        return "18-59"
    return "60+"
