from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from shared.db import UtcDatetime
from shared.schemas import Strict

TargetIndicator = Literal["individuals_directly_assisted", "beneficiaries_registered", "trainings_completed",
                          "grants_disbursed", "individuals_benefiting_from_infrastructure"]


class TargetProgress(BaseModel):
    indicator: str
    period: str
    governorate: str | None = Field(description="null: the whole programme.")
    target: int
    actual: int = Field(description="Within the period (people: first assisted, or registered, in it); a frozen "
                                    "period's stored figure; the current period's includes the adjustments.")
    percent_achieved: float | None = Field(description="actual / target in percent, 1 decimal (null at target 0).")
    frozen: bool


class Adjustment(BaseModel):
    period: str
    indicator: str
    governorate: str | None
    frozen_value: int = Field(description="The figure stored when the period was frozen.")
    value_now: int = Field(description="The same figure computed now, with the events that arrived since.")
    adjustment: int = Field(description="value_now - frozen_value: counted in the current period instead.")


class Summary(BaseModel):
    individuals_directly_assisted: int = Field(
        description="Distinct persons (merges applied) with at least one grant disbursement or completed training.")
    individuals_benefiting_from_infrastructure: int = Field(
        description="Sum of catchment_population over projects that reached `completed`.")
    communities_reached: int = Field(
        description="Distinct communities with a directly assisted resident or a completed infrastructure project.")
    beneficiaries_registered: int = Field(description="Registered persons, merges applied.")
    trainings_completed: int = Field(
        description="Completed training enrolments in courses of these governorates (a person may complete several).")
    share_employed_at_follow_up: float | None = Field(
        description="Over completed enrolments with at least one employment follow-up, the share whose latest "
                    "follow-up (6 months over 3) is employed or self-employed (0..1, 4 decimals); null when none.")
    grants_disbursed: int = Field(
        default=0, description="Grants with at least one disbursement that was not reversed (grants, not tranches).")
    grant_amounts_disbursed: dict[str, float] = Field(
        default_factory=dict, description="Amounts disbursed and not reversed, per currency: {\"USD\": 1500.0}.")
    grants_approved: int = Field(default=0, description="Grant applications whose latest decision is approval "
                                                        "(not yet cancelled or withdrawn).")
    grant_businesses_operating: int = Field(
        default=0, description="Grants whose latest monitoring visit found the business operating.")
    feedback_received: int = Field(default=0, description="Feedback cases received (every channel and category).")
    feedback_received_by_category: dict[str, int] = Field(
        default_factory=dict, description="Cases per category; the sensitive categories (sea, fraud_corruption, "
                                          "staff_misconduct) only as one `sensitive` bucket.")
    share_feedback_resolved_within_service_levels: float | None = Field(
        default=None, description="Over resolved (or closed) cases, the share resolved within their service "
                                  "level (0..1, 4 decimals); null when none is resolved.")
    resource_centres_active: int = Field(default=0, description="Community resource centres currently active.")
    community_activity_participants: int = Field(
        default=0, description="Participants counted in community activities (dialogue, reconciliation, civic "
                               "engagement, awareness); a person attending two counts twice.")
    communities_with_reconciliation_activity: int = Field(
        default=0, description="Distinct communities with at least one community-led reconciliation activity.")
    projects_completed: int = Field(
        default=0, description="Infrastructure projects that reached `completed` (handed over included).")
    projects_completed_by_sector: dict[str, int] = Field(
        default_factory=dict, description="Completed infrastructure projects per sector: {\"water\": 3}.")
    communities_with_completed_assessment: int = Field(
        default=0, description="Distinct communities with a completed participatory community assessment.")
    individuals_benefiting_from_infrastructure_estimate: int = Field(
        default=0, description="An estimate of the distinct people benefiting from infrastructure: overlapping "
                               "catchments are not added up (each community counts its largest completed catchment "
                               "once). A lower bound beside the plain sum.")
    targets: list[TargetProgress] = Field(default_factory=list, description="The logframe: each target with "
                                          "its actual and percent achieved (targets within your governorates).")
    adjustments: list[Adjustment] = Field(default_factory=list, description="Late events: how far each frozen "
                                          "period's figure has moved since it was frozen (counted in the current "
                                          "period).")
    as_of: UtcDatetime = Field(description="When the newest event behind these figures was applied.")


class PublicSummary(BaseModel):
    individuals_directly_assisted: int | None = Field(
        description="null when suppressed (as the governorate's cell, or a programme total under the threshold).")
    individuals_benefiting_from_infrastructure: int
    communities_reached: int
    as_of: UtcDatetime


class DeadLetterPublic(BaseModel):
    id: int
    event_id: str | None
    subject: str
    error: str
    deliveries: int
    created_at: UtcDatetime


class Breakdown(BaseModel):
    indicator: str
    by: list[str]
    items: list[dict[str, Any]] = Field(
        description='One cell per combination, e.g. {"sex": "female", "age_group": "18-59", "value": 12}; '
                    'values not known yet are "unknown". In the public breakdown every value is listed and a '
                    'suppressed cell is {"value": null, "suppressed": true}.')
    total: int | None = Field(default=None, description="The sum of the cells: the indicator for the same scope "
                                                        "and window (public: null when suppressed).")


class PeriodCreate(Strict):
    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$", examples=["2026-Q1"])
    starts_on: date
    ends_on: date

    @model_validator(mode="after")
    def _ordered(self) -> PeriodCreate:
        if self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class PeriodPublic(BaseModel):
    code: str
    starts_on: date
    ends_on: date
    frozen_at: UtcDatetime | None


class TargetSet(Strict):
    indicator: TargetIndicator
    period: str = Field(max_length=32)
    governorate: str | None = Field(default=None, pattern=r"^IQG\d{2}$", description="null: the whole programme.")
    target: int = Field(ge=0, le=100_000_000)


class TargetPublic(BaseModel):
    indicator: str
    period: str
    governorate: str | None
    target: int
