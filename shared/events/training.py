"""Events of the training service (the contract; consumers import this, never the service).

Pseudonymous: ids, dates, the course's skill area, audience and place, statuses and categories. Never a
name, a phone, a national ID or free text (an override reason or a dropout note stays in the training
service). ``revision`` is the enrolment's version after the change: a consumer keeps the newest.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from shared.events import EventData

EnrolmentStatus = Literal["enrolled", "waitlisted", "completed", "dropped"]
Audience = Literal["community_members", "local_authority_staff"]
DropoutReason = Literal["employment", "relocation", "health", "family", "lost_interest", "other"]
EmploymentStatus = Literal["employed", "self_employed", "unemployed", "studying"]
IncomeBand = Literal["none", "under_250k", "250k_500k", "500k_1m", "over_1m"]  # IQD per month


class EnrolmentSnapshot(EventData):
    """A snapshot of an enrolment: who (pseudonymous id of the person, merges followed when enrolled), where
    (the course's community, district and governorate), what (course, skill area, audience) and its status."""

    service: ClassVar[str] = "training"
    entity: ClassVar[str] = "enrolment"

    enrolment_id: str
    course_id: str
    beneficiary_id: str
    revision: int
    status: EnrolmentStatus
    skill_area: str
    audience: Audience
    community_id: str
    district_pcode: str
    governorate_pcode: str


class EnrolmentCreated(EnrolmentSnapshot):
    """A person enrolled (``status: enrolled``) or joined the waiting list (``status: waitlisted``)."""

    action: ClassVar[str] = "created"

    enrolled_on: date


class EnrolmentPromoted(EnrolmentSnapshot):
    """A waiting-list entry moved up into a freed place (``status: enrolled``)."""

    action: ClassVar[str] = "promoted"

    promoted_on: date


class EnrolmentCompleted(EnrolmentSnapshot):
    """The trainee completed the course: the person counts as directly assisted."""

    action: ClassVar[str] = "completed"

    completed_on: date
    certified: bool
    attendance_percent: int
    overridden: bool


class EnrolmentDropped(EnrolmentSnapshot):
    action: ClassVar[str] = "dropped"

    dropped_on: date
    reason: DropoutReason


class FollowUpRecorded(EventData):
    """An employment follow-up of a completed enrolment, 3 or 6 months after completion."""

    service: ClassVar[str] = "training"
    entity: ClassVar[str] = "follow_up"
    action: ClassVar[str] = "recorded"

    follow_up_id: str
    enrolment_id: str
    beneficiary_id: str
    months_after: Literal[3, 6]
    employment_status: EmploymentStatus
    income_band: IncomeBand
    recorded_on: date
    skill_area: str
    governorate_pcode: str
