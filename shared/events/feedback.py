"""Events of the feedback service (the contract; consumers import this, never the service).

Pseudonymous and textless: ids, categories, channels, statuses, dates, P-codes, flags and counts. Never a
description, a contact detail, a note, a response, a referral's recipient, a facilitator or an outcome: those
stay in the feedback service (sealed at rest). No event says who submitted a case.

``revision`` is the row's version after the change: a consumer keeps the newest snapshot, so it reaches the
same state in any arrival order. Every feedback event carries the whole snapshot (category, sensitive flag,
place, received date, status and whether the service levels were met).
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from shared.events import EventData

Channel = Literal["hotline", "help_desk", "sms", "whatsapp", "email", "in_person", "suggestion_box"]
Category = Literal["appreciation", "information_request", "assistance_request", "minor_dissatisfaction",
                   "major_dissatisfaction", "sea", "fraud_corruption", "staff_misconduct", "safety_security",
                   "out_of_scope"]
SENSITIVE_CATEGORIES: frozenset[str] = frozenset({"sea", "fraud_corruption", "staff_misconduct"})
FeedbackStatus = Literal["received", "acknowledged", "in_progress", "referred", "resolved", "closed"]
ActivityKind = Literal["dialogue", "reconciliation", "civic_engagement", "awareness"]


class FeedbackSnapshot(EventData):
    """A case as it stands after the change: what (category, channel, sensitive), where (community and P-codes,
    absent when the case was taken without a place; the resource centre it was received at), when (received
    date) and its status, with whether it met its service levels (null while not yet known)."""

    service: ClassVar[str] = "feedback"
    entity: ClassVar[str] = "feedback"

    feedback_id: str
    revision: int
    status: FeedbackStatus
    category: Category
    channel: Channel
    sensitive: bool
    community_id: str | None
    district_pcode: str | None
    governorate_pcode: str | None
    resource_centre_id: str | None
    received_on: date
    acknowledged_within_service_level: bool | None
    resolved_within_service_level: bool | None


class FeedbackReceived(FeedbackSnapshot):
    action: ClassVar[str] = "received"


class FeedbackStatusChanged(FeedbackSnapshot):
    """A transition (``status`` is the new one, ``previous_status`` the old); ``changed_on`` its date."""

    action: ClassVar[str] = "status_changed"

    previous_status: FeedbackStatus
    changed_on: date


class ResourceCentreSnapshot(EventData):
    service: ClassVar[str] = "feedback"
    entity: ClassVar[str] = "resource_centre"

    resource_centre_id: str
    revision: int
    community_id: str
    district_pcode: str
    governorate_pcode: str
    active: bool


class ResourceCentreCreated(ResourceCentreSnapshot):
    action: ClassVar[str] = "created"


class ResourceCentreUpdated(ResourceCentreSnapshot):
    action: ClassVar[str] = "updated"


class CommunityActivityRecorded(EventData):
    """A dialogue, reconciliation, civic engagement or awareness activity: participants are counted, not
    registered (no one is named)."""

    service: ClassVar[str] = "feedback"
    entity: ClassVar[str] = "community_activity"
    action: ClassVar[str] = "recorded"

    activity_id: str
    kind: ActivityKind
    community_id: str
    district_pcode: str
    governorate_pcode: str
    resource_centre_id: str | None
    held_on: date
    participants_total: int
    participants_female: int
    participants_male: int
    participants_idp: int
    participants_returnee: int
    participants_host_community: int
