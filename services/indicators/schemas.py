from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from shared.db import UtcDatetime


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
    as_of: UtcDatetime = Field(description="When the newest event behind these figures was applied.")


class PublicSummary(BaseModel):
    individuals_directly_assisted: int
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
                    'in the public breakdown a cell under 5 is {"value": null, "suppressed": true}.')
