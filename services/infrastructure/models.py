"""Tables of the infrastructure service (never request or response bodies).

Every row keeps a copy of its community's district and governorate P-codes (asked of the beneficiaries
service when it is created), so scope and filters are local queries. Assessments and projects are
``Versioned``: a completion, a status transition or a progress update is one version-checked UPDATE, so
the same transition raced twice happens once.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Index, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.concurrency import Versioned
from shared.db import utcnow


def new_id() -> str:
    return str(uuid.uuid4())


class CommunityAssessment(Versioned, table=True):
    """A participatory assessment of a community's needs with its local authority: who took part, the ranked
    priorities (``AssessmentPriority``), what the community can contribute, and a conflict-sensitivity part
    (groups present, dividers, connectors, risks a project could create; JSON, risks with ids)."""

    __tablename__ = "community_assessments"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    community_id: str = Field(max_length=36, index=True)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)
    assessed_on: date
    status: str = Field(max_length=16, index=True)  # draft | completed
    completed_on: date | None = None
    participants_female: int
    participants_male: int
    participants_idp: int
    participants_returnee: int
    participants_host_community: int
    local_authority: str | None = Field(default=None, max_length=200)  # never in an event
    contributions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    conflict_sensitivity: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class AssessmentPriority(SQLModel, table=True):
    """One ranked need of an assessment (rank 1 is the community's first priority)."""

    __tablename__ = "assessment_priorities"
    __table_args__ = (UniqueConstraint("assessment_id", "rank", name="uq_assessment_priorities_rank"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    assessment_id: str = Field(foreign_key="community_assessments.id", max_length=36, index=True)
    rank: int
    sector: str = Field(max_length=16)
    need: str = Field(max_length=500)


class InfrastructureProject(Versioned, table=True):
    """A rehabilitation project in a community. ``assessment_priority_id`` is the assessed priority it
    answers; without one, ``justification`` says why it is done anyway."""

    __tablename__ = "projects"
    __table_args__ = (Index("ix_projects_governorate_status", "governorate_pcode", "status"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    title: str = Field(max_length=200)
    sector: str = Field(max_length=16, index=True)
    community_id: str = Field(max_length=36, index=True)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)
    assessment_id: str | None = Field(default=None, foreign_key="community_assessments.id", max_length=36)
    assessment_priority_id: str | None = Field(default=None, foreign_key="assessment_priorities.id",
                                               max_length=36)
    priority_rank: int | None = None
    justification: str | None = Field(default=None, max_length=2000)
    budget: Decimal | None = Field(default=None, sa_column=Column(Numeric(16, 2), nullable=True))
    currency: str | None = Field(default=None, max_length=3)
    community_contribution: str | None = Field(default=None, max_length=500)
    contractor: str | None = Field(default=None, max_length=200)
    planned_start: date | None = None
    planned_end: date | None = None
    latitude: float | None = None
    longitude: float | None = None
    catchment_population: int
    catchment_female: int | None = None
    catchment_male: int | None = None
    catchment_idp: int | None = None
    catchment_returnee: int | None = None
    catchment_host_community: int | None = None
    risks_to_mitigate: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(max_length=16, index=True)  # planned | in_progress | completed | handed_over | cancelled
    progress_percent: int = 0
    started_on: date | None = None
    completed_on: date | None = None
    handed_over_on: date | None = None
    handover_authority: str | None = Field(default=None, max_length=200)  # never in an event
    cancelled_on: date | None = None
    cancellation_reason: str | None = Field(default=None, max_length=500)  # never in an event
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class ProjectProgress(SQLModel, table=True):
    """One progress update of a project (kept as history)."""

    __tablename__ = "project_progress"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    project_id: str = Field(foreign_key="projects.id", max_length=36, index=True)
    percent: int
    note: str | None = Field(default=None, max_length=1000)  # never in an event
    reported_on: date
    recorded_by: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, index=True)


TABLES = (CommunityAssessment, AssessmentPriority, InfrastructureProject, ProjectProgress)
