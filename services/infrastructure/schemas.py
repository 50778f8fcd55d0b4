"""Request and response bodies of the infrastructure service."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.db import UtcDatetime
from shared.events.infrastructure import ProjectStatus, Sector
from shared.schemas import PastDate, Strict

Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text500 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Text2000 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Count = Annotated[int, Field(ge=0, le=100_000_000)]
ContributionKind = Literal["labour", "land", "materials", "equipment", "funds", "other"]
Transition = Literal["in_progress", "completed", "handed_over", "cancelled", "planned"]


# -- community assessments --------------------------------------------------------------------------
class Participants(Strict):
    """Who took part: by sex (``female + male`` is the total) and by group (displaced, returnee, host), whose
    sum cannot exceed the total."""

    female: Count
    male: Count
    idp: Count = 0
    returnee: Count = 0
    host_community: Count = 0

    @model_validator(mode="after")
    def _groups_within_total(self) -> Participants:
        if self.female + self.male == 0:
            raise ValueError("an assessment has participants")
        if self.idp + self.returnee + self.host_community > self.female + self.male:
            raise ValueError("idp + returnee + host_community exceeds the participants (female + male)")
        return self


class PriorityCreate(Strict):
    sector: Sector
    need: Text500


class Contribution(Strict):
    kind: ContributionKind
    description: Text500


class RiskCreate(Strict):
    description: Text500
    mitigation: Text500 | None = None


class ConflictSensitivityCreate(Strict):
    """Groups present, what divides them (dividers, tensions) and what connects them, and the risks a project
    could create (each gets an ``id`` that projects name in ``risks_to_mitigate``)."""

    groups_present: Annotated[list[Text200], Field(max_length=50)] = []
    dividers: Annotated[list[Text500], Field(max_length=50)] = []
    connectors: Annotated[list[Text500], Field(max_length=50)] = []
    risks: Annotated[list[RiskCreate], Field(max_length=50)] = []


class AssessmentCreate(Strict):
    community_id: str
    assessed_on: PastDate
    participants: Participants
    local_authority: Text200 | None = Field(default=None, description="The local authority that took part.")
    priorities: Annotated[list[PriorityCreate], Field(min_length=1, max_length=20,
                                                      description="Ranked: the first is the first priority.")]
    contributions: Annotated[list[Contribution], Field(max_length=50)] = []
    conflict_sensitivity: ConflictSensitivityCreate = ConflictSensitivityCreate()


class AssessmentCompletion(Strict):
    completed_on: PastDate


class PriorityPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    rank: int
    sector: Sector
    need: str


class Risk(BaseModel):
    id: str
    description: str
    mitigation: str | None = None


class ConflictSensitivity(BaseModel):
    groups_present: list[str]
    dividers: list[str]
    connectors: list[str]
    risks: list[Risk]


class AssessmentPublic(BaseModel):
    id: str
    community_id: str
    district_pcode: str
    governorate_pcode: str
    assessed_on: date
    status: Literal["draft", "completed"]
    completed_on: date | None
    participants: dict[str, int]
    local_authority: str | None
    priorities: list[PriorityPublic]
    contributions: list[dict[str, Any]]
    conflict_sensitivity: ConflictSensitivity | None = Field(
        description="Shown to programme_manager, me_officer and admin only (null for other readers): who is in "
                    "tension with whom is sensitive.")
    version: int
    created_at: UtcDatetime


# -- projects ---------------------------------------------------------------------------------------
class Catchment(BaseModel):
    """The optional breakdown of a catchment population: never more than the total, by sex or by group."""

    female: Count | None = None
    male: Count | None = None
    idp: Count | None = None
    returnee: Count | None = None
    host_community: Count | None = None


class CatchmentCreate(Catchment, Strict):
    pass


class ProjectCreate(Strict):
    title: Text200
    sector: Sector
    community_id: str
    catchment_population: Count
    catchment: CatchmentCreate | None = Field(default=None, description="Optional breakdown of the catchment.")
    assessment_priority_id: str | None = Field(default=None, description="The priority of a completed community "
                                               "assessment of the same community that the project answers.")
    justification: Text2000 | None = Field(default=None, description="Required when the project answers no "
                                           "assessed priority of its community.")
    budget: Annotated[Decimal, Field(ge=0, le=Decimal("99999999999999"), max_digits=16, decimal_places=2)] | None = None
    currency: Literal["IQD", "USD"] | None = None
    community_contribution: Text500 | None = None
    contractor: Text200 | None = None
    planned_start: date | None = None
    planned_end: date | None = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    risks_to_mitigate: Annotated[list[str], Field(max_length=50, description="Ids of risks named in the answered "
                                                  "assessment's conflict-sensitivity part.")] = []

    @model_validator(mode="after")
    def _consistent(self) -> ProjectCreate:
        if (self.budget is None) != (self.currency is None):
            raise ValueError("budget and currency go together")
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("a GPS point needs both latitude and longitude")
        if self.planned_start and self.planned_end and self.planned_end < self.planned_start:
            raise ValueError("planned_end is before planned_start")
        if self.catchment is not None:
            c, total = self.catchment, self.catchment_population
            if (c.female or 0) + (c.male or 0) > total:
                raise ValueError("catchment female + male exceeds catchment_population")
            if (c.idp or 0) + (c.returnee or 0) + (c.host_community or 0) > total:
                raise ValueError("catchment idp + returnee + host_community exceeds catchment_population")
        return self


class StatusChange(Strict):
    status: Transition
    on: PastDate
    reason: Text500 | None = Field(default=None, description="Required to cancel.")
    authority: Text200 | None = Field(default=None, description="Required to hand over: the authority that will "
                                      "run the infrastructure.")


class ProgressCreate(Strict):
    percent: Annotated[int, Field(ge=0, le=100)]
    reported_on: PastDate
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)] | None = None


class ProgressPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    project_id: str
    percent: int
    note: str | None
    reported_on: date
    created_at: UtcDatetime


class ProjectPublic(BaseModel):
    id: str
    title: str
    sector: Sector
    community_id: str
    district_pcode: str
    governorate_pcode: str
    assessment_id: str | None
    assessment_priority_id: str | None
    priority_rank: int | None
    justification: str | None
    budget: Decimal | None
    currency: str | None
    community_contribution: str | None
    contractor: str | None
    planned_start: date | None
    planned_end: date | None
    latitude: float | None
    longitude: float | None
    catchment_population: int
    catchment: Catchment | None
    risks_to_mitigate: list[str]
    status: ProjectStatus
    progress_percent: int
    started_on: date | None
    completed_on: date | None
    handed_over_on: date | None
    handover_authority: str | None
    cancelled_on: date | None
    cancellation_reason: str | None
    version: int
    created_at: UtcDatetime
