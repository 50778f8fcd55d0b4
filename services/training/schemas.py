"""Request and response bodies of the training service."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.db import UtcDatetime
from shared.events.training import Audience, DropoutReason, EmploymentStatus, EnrolmentStatus, IncomeBand
from shared.schemas import PastDate, Strict

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
# A code, not free text (it travels in events): lower-case letters, digits and underscores.
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,63}$"),
                 Field(examples=["tailoring", "solar_installation"])]
Percent = Annotated[int, Field(ge=0, le=100)]


class CourseCreate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "title": "Tailoring, level 1", "skill_area": "tailoring", "provider": "Mosul Vocational Centre",
        "community_id": "5b0e4a57-2b9e-4c1e-8f0a-2d3c4b5a6978", "start_date": "2026-12-01",
        "end_date": "2027-01-31", "capacity": 20, "planned_sessions": 24}]})

    title: Text200
    skill_area: Code
    provider: Text200 | None = None
    community_id: str
    start_date: date
    end_date: date
    capacity: Annotated[int, Field(ge=1, le=10_000)]
    planned_sessions: Annotated[int, Field(ge=1, le=1_000)] | None = None
    audience: Audience = "community_members"
    completion_threshold: Percent = 80

    @model_validator(mode="after")
    def _dates(self) -> CourseCreate:
        if self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class CoursePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    skill_area: str
    provider: str | None
    community_id: str
    district_pcode: str
    governorate_pcode: str
    start_date: date
    end_date: date
    capacity: int
    planned_sessions: int | None
    audience: Audience
    completion_threshold: int
    enrolled_count: int
    version: int
    created_at: UtcDatetime


class EnrolmentCreate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"beneficiary_id": "5b0e4a57-2b9e-4c1e-8f0a-2d3c4b5a6978"}]})

    beneficiary_id: str
    waitlist: bool = Field(default=False, description="When the course is full, join its waiting list "
                                                      "(201, `status: waitlisted`) instead of a 409.")


class EnrolmentPublic(BaseModel):
    id: str
    course_id: str
    beneficiary_id: str
    status: EnrolmentStatus
    skill_area: str
    community_id: str
    governorate_pcode: str
    enrolled_on: date
    waitlist_position: int | None = None
    sessions_attended: int
    attendance_percent: int
    meets_threshold: bool
    completed_on: date | None
    certified: bool
    certified_on: date | None
    overridden: bool
    dropped_on: date | None
    drop_reason: DropoutReason | None
    version: int
    created_at: UtcDatetime


class AttendanceRecord(Strict):
    enrolment_id: str
    present: bool


class AttendanceCreate(Strict):
    session: Annotated[int, Field(ge=1, le=1_000, description="The session's number, 1 to planned_sessions")]
    held_on: PastDate
    records: Annotated[list[AttendanceRecord], Field(min_length=1, max_length=500)]


class AttendancePublic(BaseModel):
    course_id: str
    session: int
    held_on: date
    recorded: int
    enrolments: list[EnrolmentPublic]


class CompletionCreate(Strict):
    completed_on: PastDate
    certified: bool = False
    override_reason: Note | None = None


class CertificationCreate(Strict):
    certified_on: PastDate


class DropoutCreate(Strict):
    dropped_on: PastDate
    reason: DropoutReason
    note: Note | None = None


class FollowUpCreate(Strict):
    months_after: Literal[3, 6]
    employment_status: EmploymentStatus
    income_band: IncomeBand
    recorded_on: PastDate


class FollowUpPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    enrolment_id: str
    months_after: int
    employment_status: EmploymentStatus
    income_band: IncomeBand
    recorded_on: date
    created_at: UtcDatetime


class FollowUpDue(BaseModel):
    enrolment_id: str
    course_id: str
    beneficiary_id: str
    months_after: int
    due_on: date
    completed_on: date


class MarketAssessmentCreate(Strict):
    title: Text200
    governorate_pcode: Annotated[str, StringConstraints(pattern=r"^IQG\d{2}$"), Field(examples=["IQG15"])]
    conducted_on: PastDate


class MarketAssessmentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    governorate_pcode: str
    conducted_on: date
    created_at: UtcDatetime


class JobOpportunityCreate(Strict):
    market_assessment_id: str
    employer: Text200 | None = None
    sector: Code
    skill_area: Code
    openings: Annotated[int, Field(ge=1, le=100_000)]
    period_start: date
    period_end: date

    @model_validator(mode="after")
    def _period(self) -> JobOpportunityCreate:
        if self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        return self


class JobOpportunityPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    market_assessment_id: str
    employer: str | None
    sector: str
    skill_area: str
    governorate_pcode: str
    openings: int
    period_start: date
    period_end: date
    created_at: UtcDatetime


class TraineeMatch(BaseModel):
    beneficiary_id: str
    enrolment_id: str
    course_id: str
    skill_area: str
    completed_on: date
    certified: bool
