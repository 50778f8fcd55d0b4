"""Request and response bodies of the feedback service."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from shared.db import UtcDatetime
from shared.events.feedback import ActivityKind, Category, Channel, FeedbackStatus
from shared.schemas import PastDate, Strict

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
# A code, not free text: lower-case letters, digits and underscores.
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$"), Field(examples=["youth", "women"])]
Count = Annotated[int, Field(ge=0, le=1_000_000)]
Transition = Literal["acknowledged", "in_progress", "referred", "resolved", "closed"]
Satisfaction = Literal["satisfied", "partly_satisfied", "not_satisfied", "not_reached"]


# -- feedback ---------------------------------------------------------------------------------------
class FeedbackCreate(Strict):
    channel: Channel
    category: Category
    description: Description
    community_id: str | None = None
    resource_centre_id: str | None = Field(default=None, description="The resource centre it was received at "
                                                                     "(its community is the case's by default).")
    anonymous: bool
    contact: Text200 | None = Field(default=None, description="How to reach the person (never with "
                                                              "`anonymous: true`).")

    @model_validator(mode="after")
    def _anonymous_has_no_contact(self) -> FeedbackCreate:
        if self.anonymous and self.contact is not None:
            raise ValueError("an anonymous submission keeps no contact")
        return self


class FeedbackReceipt(BaseModel):
    """The intake answer: the `pin` is shown once, here (an `Idempotency-Key` replay shows it as null)."""

    id: str
    reference: str
    pin: str | None = Field(description="The secret PIN that, with the reference, follows the case at "
                                        "`/api/v1/public/feedback/{reference}/status`. Shown once.")
    status: FeedbackStatus
    category: Category
    sensitive: bool
    received_at: UtcDatetime
    acknowledge_due_at: UtcDatetime
    resolve_due_at: UtcDatetime


class FeedbackSummary(BaseModel):
    """A case in a list: no description, contact, note or response (reading those is audited, one case at a
    time)."""

    id: str
    reference: str
    channel: Channel
    category: Category
    sensitive: bool
    anonymous: bool
    status: FeedbackStatus
    community_id: str | None
    district_pcode: str | None
    governorate_pcode: str | None
    resource_centre_id: str | None
    received_at: UtcDatetime
    acknowledge_due_at: UtcDatetime
    resolve_due_at: UtcDatetime
    acknowledged_at: UtcDatetime | None
    resolved_at: UtcDatetime | None
    closed_at: UtcDatetime | None
    acknowledged_within_service_level: bool | None
    resolved_within_service_level: bool | None
    overdue: bool
    responded_at: UtcDatetime | None
    referred_at: UtcDatetime | None
    referral_consent: bool | None
    satisfaction: Satisfaction | None
    version: int


class Referral(BaseModel):
    referred_to: str
    consent: bool
    referred_at: UtcDatetime


class FeedbackPublic(FeedbackSummary):
    """A case with its text: only ever shown to one who may read it, and each read is audited."""

    description: str
    contact: str | None
    response: str | None
    referral: Referral | None


class StatusChange(Strict):
    status: Transition
    note: Note | None = Field(default=None, description="Internal: never shown to the complainant.")
    referred_to: Text200 | None = Field(default=None, description="With `referred`: the organisation or "
                                                                  "service the case goes to.")
    referral_consent: bool | None = Field(default=None, description="With `referred`: whether the person "
                                                                    "consented to the referral.")
    satisfaction: Satisfaction | None = Field(default=None, description="With `closed`: the person's "
                                                                        "satisfaction with how it was handled.")

    @model_validator(mode="after")
    def _fields_of_the_status(self) -> StatusChange:
        if self.status == "referred":
            if self.referred_to is None or self.referral_consent is None:
                raise ValueError("a referral names `referred_to` and `referral_consent`")
        elif self.referred_to is not None or self.referral_consent is not None:
            raise ValueError("`referred_to` and `referral_consent` go with status `referred` only")
        if self.satisfaction is not None and self.status != "closed":
            raise ValueError("`satisfaction` goes with status `closed` only")
        return self


class ReferralCreate(Strict):
    referred_to: Text200
    consent: bool
    note: Note | None = None


class ResponseCreate(Strict):
    response: Note = Field(description="The answer to the complainant, shown on the public status page.")


class HistoryEntry(BaseModel):
    status: FeedbackStatus
    previous_status: FeedbackStatus | None
    note: str | None
    actor: str
    at: UtcDatetime


class AuditLine(BaseModel):
    action: str
    actor: str
    fields: list[str]
    at: UtcDatetime


class PinReset(BaseModel):
    reference: str
    pin: str | None


class PublicStatus(BaseModel):
    reference: str
    status: FeedbackStatus
    response: str | None
    updated_at: UtcDatetime


class CountItem(BaseModel):
    key: str
    count: int


class Counts(BaseModel):
    by: str
    items: list[CountItem]
    total: int


class ServiceLevelPublic(BaseModel):
    category: Category
    sensitive: bool
    acknowledge_hours: float
    resolve_hours: float


# -- resource centres -------------------------------------------------------------------------------
class ResourceCentreCreate(Strict):
    name: Text200
    community_id: str
    opening_hours: Text200 | None = Field(default=None, examples=["Sun-Thu 08:00-14:00"])
    contact_channel: Text200 | None = Field(default=None, examples=["hotline 80069"])
    active: bool = True


class ResourceCentreUpdate(Strict):
    name: Text200 | None = None
    opening_hours: Text200 | None = None
    contact_channel: Text200 | None = None
    active: bool | None = None


class ResourceCentrePublic(BaseModel):
    id: str
    name: str
    community_id: str
    district_pcode: str
    governorate_pcode: str
    opening_hours: str | None
    contact_channel: str | None
    active: bool
    version: int
    created_at: UtcDatetime
    updated_at: UtcDatetime

    model_config = {"from_attributes": True}


# -- community activities ---------------------------------------------------------------------------
class Participants(Strict):
    total: Count
    female: Count
    male: Count
    idp: Count = 0
    returnee: Count = 0
    host_community: Count = 0

    @model_validator(mode="after")
    def _groups_within_total(self) -> Participants:
        if self.female + self.male > self.total:
            raise ValueError("female and male participants exceed the total")
        if self.idp + self.returnee + self.host_community > self.total:
            raise ValueError("idp, returnee and host community participants exceed the total")
        return self


class FollowUpAction(Strict):
    action: Note
    due_on: date | None = None


class CommunityActivityCreate(Strict):
    kind: ActivityKind
    community_id: str
    held_on: PastDate
    resource_centre_id: str | None = None
    facilitators: Annotated[list[Text200], Field(max_length=20)] = []
    participants: Participants
    groups_represented: Annotated[list[Code], Field(max_length=30)] = []
    outcome: Note | None = None
    follow_up_actions: Annotated[list[FollowUpAction], Field(max_length=30)] = []


class ParticipantsPublic(BaseModel):
    total: int
    female: int
    male: int
    idp: int
    returnee: int
    host_community: int


class FollowUpActionPublic(BaseModel):
    action: str
    due_on: date | None


class CommunityActivityPublic(BaseModel):
    id: str
    kind: ActivityKind
    community_id: str
    district_pcode: str
    governorate_pcode: str
    resource_centre_id: str | None
    held_on: date
    facilitators: list[str]
    participants: ParticipantsPublic
    groups_represented: list[str]
    outcome: str | None
    follow_up_actions: list[FollowUpActionPublic]
    created_at: UtcDatetime

