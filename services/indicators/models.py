"""Pseudonymous projections kept by the indicators service (fed only by events)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Column, Index, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel


class Person(SQLModel, table=True):
    """One registered person: no names, phones or IDs, only what disaggregation needs.

    A row may exist before its registration arrives (an update or merge came first):
    ``registered`` says whether the registration itself has been seen.
    """

    __tablename__ = "persons"

    beneficiary_id: str = Field(primary_key=True, max_length=36)
    registered: bool = False
    revision: int = 0
    sex: str | None = Field(default=None, max_length=8)
    birth_year: int | None = None
    displacement_status: str | None = Field(default=None, max_length=16)
    has_disability: bool | None = None
    community_id: str | None = Field(default=None, max_length=36)
    household_id: str | None = Field(default=None, max_length=36)
    district_pcode: str | None = Field(default=None, max_length=16)
    governorate_pcode: str | None = Field(default=None, max_length=16, index=True)
    registered_at: datetime | None = None
    merged_into_id: str | None = Field(default=None, max_length=36, index=True)
    # Derived from the above by the handlers (``reach.derive_registration``): what the registered-people
    # breakdown groups on in the database, age taken at registration.
    registered_month: str | None = Field(default=None, max_length=7)
    registered_age_group: str | None = Field(default=None, max_length=8)


class CommunityRef(SQLModel, table=True):
    __tablename__ = "community_refs"

    community_id: str = Field(primary_key=True, max_length=36)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)


class Assistance(SQLModel, table=True):
    """The reach ledger: one row per act of direct assistance to a person (a grant disbursement, a completed
    training, ...), tagged with the programme pillar it serves and placed where it was given.

    Rows are written only through ``reach.record_assistance`` / ``reach.withdraw_assistance``, which keep
    ``Reach`` (one row per person) and its counts in step; any service's handlers may add rows that way.
    """

    __tablename__ = "assistance"

    source_id: str = Field(primary_key=True, max_length=80)  # e.g. "disbursement:<id>", "enrolment:<id>"
    person_id: str = Field(max_length=36, index=True)
    kind: str = Field(max_length=32)
    on: date
    pillar: str = Field(default="unknown", max_length=24)
    community_id: str | None = Field(default=None, max_length=36)
    district_pcode: str | None = Field(default=None, max_length=16)
    governorate_pcode: str | None = Field(default=None, max_length=16)


class Reach(SQLModel, table=True):
    """One row per directly assisted person (the survivor of any merges), described as at their first
    assistance: when (``first_on``, ``month``), under which pillar, where it was given, and the person's sex,
    age group then, displacement status and disability (``unknown`` until their registration arrives).

    A pure function of ``persons`` and ``assistance`` (``reach.refresh``), so it is the same in any arrival order.
    """

    __tablename__ = "reach"
    __table_args__ = (Index("ix_reach_governorate_first_on", "governorate_pcode", "first_on"),)

    person_id: str = Field(primary_key=True, max_length=36)
    first_on: date = Field(index=True)
    month: str = Field(max_length=7)
    pillar: str = Field(max_length=24)
    community_id: str = Field(max_length=36, index=True)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16)
    sex: str = Field(max_length=8)
    age_group: str = Field(max_length=8)
    displacement_status: str = Field(max_length=16)
    disability: str = Field(max_length=8)
    # Where the person lives (their record's community and governorate; null until registered): what
    # ``ReachResidence`` counts, for the summary's ``communities_reached``.
    home_community_id: str | None = Field(default=None, max_length=36)
    home_governorate_pcode: str | None = Field(default=None, max_length=16)


class ReachCell(SQLModel, table=True):
    """How many ``Reach`` rows share one combination of the low-cardinality dimensions (no month): kept by the
    handlers, so the summary and most breakdowns read a few thousand rows instead of every person. Rows at zero
    are deleted (so the table too is the same in any arrival order)."""

    __tablename__ = "reach_cells"

    governorate_pcode: str = Field(primary_key=True, max_length=16)
    pillar: str = Field(primary_key=True, max_length=24)
    sex: str = Field(primary_key=True, max_length=8)
    age_group: str = Field(primary_key=True, max_length=8)
    displacement_status: str = Field(primary_key=True, max_length=16)
    disability: str = Field(primary_key=True, max_length=8)
    people: int = 0


class ReachMonthly(SQLModel, table=True):
    """The same counts per month of first assistance, over fewer dimensions (for windows and months)."""

    __tablename__ = "reach_monthly"

    month: str = Field(primary_key=True, max_length=7)
    governorate_pcode: str = Field(primary_key=True, max_length=16)
    pillar: str = Field(primary_key=True, max_length=24)
    sex: str = Field(primary_key=True, max_length=8)
    age_group: str = Field(primary_key=True, max_length=8)
    people: int = 0


class RegisteredCell(SQLModel, table=True):
    """How many registered people (merges applied) share one combination of dimensions, at registration (kept
    by the person handlers, ``reach.count_registered``): the summary and the registered breakdowns read it."""

    __tablename__ = "registered_cells"

    governorate_pcode: str = Field(primary_key=True, max_length=16)
    month: str = Field(primary_key=True, max_length=7)
    sex: str = Field(primary_key=True, max_length=8)
    age_group: str = Field(primary_key=True, max_length=8)
    displacement_status: str = Field(primary_key=True, max_length=16)
    disability: str = Field(primary_key=True, max_length=8)
    people: int = 0


class ReachCommunity(SQLModel, table=True):
    """Communities where someone was first assisted, with how many (kept like ``ReachCell``)."""

    __tablename__ = "reach_communities"

    community_id: str = Field(primary_key=True, max_length=36)
    governorate_pcode: str = Field(max_length=16, index=True)
    people: int = 0


class ReachResidence(SQLModel, table=True):
    """How many ``Reach`` rows (directly assisted people) live in each community, per the governorate their
    record gives (``unknown`` when it gives none); kept like ``ReachCell``. The summary's ``communities_reached``
    counts these communities (with those of completed projects) instead of joining reach to persons."""

    __tablename__ = "reach_residences"

    community_id: str = Field(primary_key=True, max_length=36)
    governorate_pcode: str = Field(primary_key=True, max_length=16)
    people: int = 0


class InfrastructureProject(SQLModel, table=True):
    """An infrastructure project's reportable state: the newest ``revision`` of its snapshots (every project event
    carries the whole snapshot), so any arrival order gives the same row. ``completed_on`` is set once it reached
    ``completed`` (a handover keeps it)."""

    __tablename__ = "infrastructure_projects"

    project_id: str = Field(primary_key=True, max_length=36)
    community_id: str = Field(max_length=36, index=True)
    catchment_population: int = 0
    completed_on: date | None = None
    revision: int = 0
    status: str = Field(default="planned", max_length=16)
    sector: str = Field(default="other", max_length=16)
    district_pcode: str | None = Field(default=None, max_length=16)
    governorate_pcode: str | None = Field(default=None, max_length=16, index=True)
    answers_priority: bool = False
    catchment_female: int | None = None
    catchment_male: int | None = None
    catchment_idp: int | None = None
    catchment_returnee: int | None = None
    catchment_host_community: int | None = None
    progress_percent: int = 0
    started_on: date | None = None
    handed_over_on: date | None = None
    cancelled_on: date | None = None


class InfrastructureAssessment(SQLModel, table=True):
    """A completed participatory community assessment (counts only)."""

    __tablename__ = "infrastructure_assessments"

    assessment_id: str = Field(primary_key=True, max_length=36)
    community_id: str = Field(max_length=36, index=True)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)
    completed_on: date
    participants_female: int
    participants_male: int


class GrantApplication(SQLModel, table=True):
    """A grant application's latest decision (``revision`` orders them): submitted, approved, rejected,
    cancelled or withdrawn. A row may come from any of its events first."""

    __tablename__ = "grant_applications"

    grant_id: str = Field(primary_key=True, max_length=36)
    revision: int = 0
    status: str = Field(max_length=20)
    person_id: str = Field(max_length=36)
    call_id: str | None = Field(default=None, max_length=36)
    governorate_pcode: str = Field(max_length=16, index=True)


class GrantDisbursement(SQLModel, table=True):
    """A grant disbursement; ``reversed`` is a tombstone, kept even when the reversal arrived first, so the
    disbursement's own event then adds nothing (the person is not counted for it)."""

    __tablename__ = "grant_disbursements"

    disbursement_id: str = Field(primary_key=True, max_length=36)
    grant_id: str = Field(max_length=36, index=True)
    person_id: str = Field(max_length=36)
    call_id: str | None = Field(default=None, max_length=36)
    currency: str = Field(max_length=3)
    amount: Decimal = Field(sa_column=Column(Numeric(16, 2), nullable=False))
    disbursed_on: date
    community_id: str = Field(max_length=36)
    governorate_pcode: str = Field(max_length=16, index=True)
    reversed: bool = False


class GrantMonitoring(SQLModel, table=True):
    """A monitoring visit to a grant's business (no notes, no GPS point)."""

    __tablename__ = "grant_monitoring"

    visit_id: str = Field(primary_key=True, max_length=36)
    grant_id: str = Field(max_length=36, index=True)
    visited_on: date
    business_operating: bool
    employees_female: int
    employees_male: int
    governorate_pcode: str = Field(max_length=16, index=True)




class TrainingEnrolment(SQLModel, table=True):
    """An enrolment in a training course (fed by the training service's enrolment events).

    ``status`` follows the newest ``revision`` seen; ``completed_on`` is set by the completion whenever it
    arrives (a completion is final), so a completion seen before its enrolment still counts."""

    __tablename__ = "training_enrolments"

    enrolment_id: str = Field(primary_key=True, max_length=36)
    person_id: str = Field(max_length=36, index=True)
    course_id: str = Field(max_length=36)
    revision: int = 0
    status: str = Field(max_length=16)
    skill_area: str = Field(max_length=64)
    audience: str = Field(max_length=32)
    community_id: str = Field(max_length=36)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)  # the course's
    completed_on: date | None = None


class TrainingFollowUp(SQLModel, table=True):
    """An employment follow-up of a completed enrolment, 3 or 6 months after completion."""

    __tablename__ = "training_follow_ups"

    follow_up_id: str = Field(primary_key=True, max_length=36)
    enrolment_id: str = Field(max_length=36, index=True)
    person_id: str = Field(max_length=36)
    months_after: int
    employment_status: str = Field(max_length=16)
    income_band: str = Field(max_length=16)
    recorded_on: date
    governorate_pcode: str = Field(max_length=16)


class FeedbackCase(SQLModel, table=True):
    """A feedback case, as its newest snapshot (``revision``) says: category, sensitive flag, place, status and
    whether it met its service levels. No text; sensitive cases only ever leave as aggregate counts."""

    __tablename__ = "feedback_cases"

    feedback_id: str = Field(primary_key=True, max_length=36)
    revision: int = 0
    status: str = Field(max_length=16)
    category: str = Field(max_length=32)
    channel: str = Field(max_length=16)
    sensitive: bool
    community_id: str | None = Field(default=None, max_length=36)
    governorate_pcode: str | None = Field(default=None, max_length=16, index=True)
    resource_centre_id: str | None = Field(default=None, max_length=36)
    received_on: date
    resolved_within_service_level: bool | None = None


class FeedbackResourceCentre(SQLModel, table=True):
    """A community resource centre and whether it is active (newest ``revision``)."""

    __tablename__ = "feedback_resource_centres"

    resource_centre_id: str = Field(primary_key=True, max_length=36)
    revision: int = 0
    community_id: str = Field(max_length=36)
    governorate_pcode: str = Field(max_length=16, index=True)
    active: bool


class CommunityActivityFact(SQLModel, table=True):
    """A community activity: its kind, place and participant counts (people counted, not registered)."""

    __tablename__ = "community_activity_facts"

    activity_id: str = Field(primary_key=True, max_length=36)
    kind: str = Field(max_length=24)
    community_id: str = Field(max_length=36)
    governorate_pcode: str = Field(max_length=16, index=True)
    held_on: date
    participants_total: int
    participants_female: int
    participants_male: int


class ReportingPeriod(SQLModel, table=True):
    """A logframe reporting period (e.g. ``2026-Q1``); once frozen its figures are those stored then."""

    __tablename__ = "reporting_periods"

    code: str = Field(primary_key=True, max_length=32)
    starts_on: date
    ends_on: date
    frozen_at: datetime | None = None
    frozen_by: str | None = Field(default=None, max_length=255)


class IndicatorTarget(SQLModel, table=True):
    """A target per indicator, period and scope (a governorate P-code, or ``all`` for the whole programme)."""

    __tablename__ = "indicator_targets"
    __table_args__ = (UniqueConstraint("indicator", "period_code", "scope"),)

    id: int | None = Field(default=None, primary_key=True)
    indicator: str = Field(max_length=64)
    period_code: str = Field(max_length=32, index=True)
    scope: str = Field(max_length=16)
    target: int
    set_by: str = Field(max_length=255)
    set_at: datetime


class FrozenFigure(SQLModel, table=True):
    """A period's figure as it stood when the period was frozen (per indicator and scope)."""

    __tablename__ = "frozen_figures"

    period_code: str = Field(primary_key=True, max_length=32)
    indicator: str = Field(primary_key=True, max_length=64)
    scope: str = Field(primary_key=True, max_length=16)
    value: int


PROJECTION_TABLES: tuple[type[SQLModel], ...] = (Person, CommunityRef, Assistance, Reach, ReachCell, ReachMonthly,
                                                 ReachCommunity, ReachResidence, RegisteredCell,
                                                 InfrastructureProject, GrantApplication, GrantDisbursement,
                                                 GrantMonitoring, TrainingEnrolment, TrainingFollowUp,
                                                 InfrastructureAssessment, FeedbackCase, FeedbackResourceCentre,
                                                 CommunityActivityFact)
"""Fed only by events: replaced by a rebuild."""

LOGFRAME_TABLES: tuple[type[SQLModel], ...] = (ReportingPeriod, IndicatorTarget, FrozenFigure)
"""Set through the API (targets, periods, frozen figures): never touched by a rebuild."""
