"""Tables of the training service (never request or response bodies).

Pseudonymous copies only: the person's survivor id (merges followed when enrolled) and governorate, the
course's community, district and governorate (for scope and events). No names, phones or IDs.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.concurrency import Versioned
from shared.db import utcnow


def new_id() -> str:
    return str(uuid.uuid4())


class Course(Versioned, table=True):
    """A vocational course. ``enrolled_count`` is the running number of places taken: every enrolment,
    promotion and dropout changes it in the same transaction, so concurrent ones conflict on the version."""

    __tablename__ = "courses"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    title: str = Field(max_length=200)
    skill_area: str = Field(max_length=64, index=True)
    provider: str | None = Field(default=None, max_length=200)
    community_id: str = Field(max_length=36, index=True)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)
    start_date: date
    end_date: date
    capacity: int
    planned_sessions: int | None = None
    audience: str = Field(max_length=32)
    completion_threshold: int
    enrolled_count: int = 0  # places taken: enrolled and completed trainees
    sessions_held: int = 0  # distinct sessions with attendance recorded (the denominator without planned_sessions)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Enrolment(Versioned, table=True):
    __tablename__ = "enrolments"
    __table_args__ = (Index("ix_enrolments_course_status", "course_id", "status"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    course_id: str = Field(foreign_key="courses.id", max_length=36)
    beneficiary_id: str = Field(max_length=36, index=True)  # the survivor when enrolled
    beneficiary_governorate_pcode: str = Field(max_length=16)  # where the person lives (matching)
    status: str = Field(max_length=16)  # enrolled | waitlisted | completed | dropped
    skill_area: str = Field(max_length=64)
    community_id: str = Field(max_length=36)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)  # the course's: scope
    enrolled_on: date
    waitlisted_at: datetime | None = None  # the waiting list's order
    sessions_attended: int = 0
    completed_on: date | None = None
    certified: bool = False
    certified_on: date | None = None
    override_reason: str | None = Field(default=None, max_length=500)  # kept here, never in an event
    dropped_on: date | None = None
    drop_reason: str | None = Field(default=None, max_length=32)
    drop_note: str | None = Field(default=None, max_length=500)  # kept here, never in an event
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Attendance(SQLModel, table=True):
    """One trainee at one session: recorded again, it is overwritten (idempotent per trainee and session)."""

    __tablename__ = "attendance"

    enrolment_id: str = Field(foreign_key="enrolments.id", primary_key=True, max_length=36)
    session: int = Field(primary_key=True)
    course_id: str = Field(max_length=36, index=True)
    held_on: date
    present: bool
    recorded_at: datetime = Field(default_factory=utcnow)


class FollowUp(SQLModel, table=True):
    __tablename__ = "follow_ups"
    __table_args__ = (UniqueConstraint("enrolment_id", "months_after", name="uq_follow_ups_enrolment_months"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    enrolment_id: str = Field(foreign_key="enrolments.id", max_length=36)
    months_after: int
    employment_status: str = Field(max_length=16)
    income_band: str = Field(max_length=16)
    recorded_on: date
    governorate_pcode: str = Field(max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class MarketAssessment(SQLModel, table=True):
    __tablename__ = "market_assessments"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    title: str = Field(max_length=200)
    governorate_pcode: str = Field(max_length=16, index=True)
    conducted_on: date
    created_at: datetime = Field(default_factory=utcnow, index=True)


class JobOpportunity(SQLModel, table=True):
    __tablename__ = "job_opportunities"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    market_assessment_id: str = Field(foreign_key="market_assessments.id", max_length=36, index=True)
    employer: str | None = Field(default=None, max_length=200)
    sector: str = Field(max_length=64)
    skill_area: str = Field(max_length=64, index=True)
    governorate_pcode: str = Field(max_length=16, index=True)
    openings: int
    period_start: date
    period_end: date
    created_at: datetime = Field(default_factory=utcnow, index=True)


TABLES = (Course, Enrolment, Attendance, FollowUp, MarketAssessment, JobOpportunity)
