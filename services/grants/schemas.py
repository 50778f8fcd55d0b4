"""Request and response bodies of the grants service."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.db import UtcDatetime
from shared.schemas import PastDate, Strict

Currency = Literal["IQD", "USD"]
Amount = Annotated[Decimal, Field(gt=0, max_digits=14, decimal_places=2)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
DisplacementStatus = Literal["idp", "returnee", "host_community"]
GrantStatus = Literal["submitted", "approved", "rejected", "cancelled", "withdrawn", "disbursing",
                      "fully_disbursed"]
IncomeBand = Literal["none", "under_250k", "250k_500k", "500k_1m", "1m_2m", "over_2m"]


class Eligibility(Strict):
    """Who may apply to a call; each rule a person fails is named in the 422."""

    displacement_statuses: list[DisplacementStatus] | None = None
    min_age: Annotated[int, Field(ge=0, le=120)] | None = None
    max_age: Annotated[int, Field(ge=0, le=120)] | None = None
    governorates: list[Annotated[str, StringConstraints(pattern=r"^IQG\d{2}$")]] | None = None
    disability_required: bool = False
    disability_priority: bool = Field(default=False, description="Applicants with a disability rank first "
                                                                  "among equal scores in the shortlist.")


class Criterion(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    weight: Annotated[float, Field(gt=0, le=100)]
    max_score: Annotated[int, Field(ge=1, le=100)] = 10


class GrantCallCreate(Strict):
    name: Text200
    sector: Text200 = Field(description="Sector or value chain, e.g. `agriculture`, `dairy`, `tailoring`.")
    budget: Amount
    currency: Currency
    opens_on: date
    closes_on: date
    eligibility: Eligibility | None = None
    criteria: list[Criterion] | None = None
    tranches: Annotated[int, Field(ge=1, le=12)] = 1
    monitoring_required: bool = Field(default=False, description="A tranche after the first needs a "
                                      "monitoring visit showing the business operating.")

    @model_validator(mode="after")
    def _check(self) -> GrantCallCreate:
        if self.closes_on < self.opens_on:
            raise ValueError("closes_on is before opens_on")
        if self.criteria and len({c.name for c in self.criteria}) != len(self.criteria):
            raise ValueError("criteria names must be distinct")
        e = self.eligibility
        if e and e.min_age is not None and e.max_age is not None and e.min_age > e.max_age:
            raise ValueError("eligibility.min_age is above max_age")
        return self


class GrantCallPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    sector: str
    budget: Decimal
    currency: Currency
    committed_amount: Decimal = Field(description="Approved amounts of live grants (the remaining budget is "
                                                  "`budget - committed_amount`).")
    opens_on: date
    closes_on: date
    eligibility: Eligibility | None
    criteria: list[Criterion] | None
    tranches: int
    monitoring_required: bool
    version: int
    created_at: UtcDatetime


class GrantCreate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "beneficiary_id": "5b0e4a57-2b9e-4c1e-8f0a-2d3c4b5a6978", "business_name": "Tel Kaif Tailoring",
        "sector": "tailoring", "amount_requested": 1200, "currency": "USD",
        "call_id": "0c3b2a19-7d6e-4f5a-8b9c-0d1e2f3a4b5c"}]})

    beneficiary_id: str
    business_name: Text200 = Field(description="Kept on the grant only: never in events or logs.")
    sector: Text200
    amount_requested: Amount
    currency: Currency
    call_id: str | None = None


class GrantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    call_id: str | None
    beneficiary_id: str = Field(description="The person (the survivor, when the id given had been merged).")
    business_name: str
    sector: str
    currency: Currency
    amount_requested: Decimal
    amount_approved: Decimal | None
    disbursed_amount: Decimal
    status: GrantStatus
    decision_reason: str | None
    score: float | None = Field(description="Mean weighted score of the scorers (0-100).")
    community_id: str
    district_pcode: str
    governorate_pcode: str
    submitted_on: date
    decided_on: date | None
    version: int
    created_at: UtcDatetime
    updated_at: UtcDatetime


class Approval(Strict):
    amount_approved: Amount


class Rejection(Strict):
    reason: Reason


class Cancellation(Strict):
    reason: Reason | None = None


class ScoreCreate(Strict):
    marks: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(
        description="Criterion name -> marks (0..its max_score); every criterion of the call.")


class ScorePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    grant_id: str
    scorer: str
    marks: dict[str, int]
    total: float
    created_at: UtcDatetime


class ShortlistItem(BaseModel):
    rank: int
    grant_id: str
    beneficiary_id: str
    score: float | None
    scorers: int
    priority: bool
    amount_requested: Decimal


class DisbursementCreate(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": 600, "disbursed_on": "2026-11-20"}]})

    amount: Amount
    disbursed_on: PastDate


class Reversal(Strict):
    reason: Reason
    reversed_on: PastDate


class DisbursementPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    grant_id: str
    tranche: int
    amount: Decimal
    disbursed_on: date
    reversed_on: date | None
    reversal_reason: str | None
    created_at: UtcDatetime


class SupportSessionCreate(Strict):
    kind: Literal["coaching", "mentoring"]
    held_on: PastDate
    topic: Text200
    provider: Text200


class SupportSessionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    grant_id: str
    kind: str
    held_on: date
    topic: str
    provider: str
    created_at: UtcDatetime


class MonitoringVisitCreate(Strict):
    visited_on: PastDate
    business_operating: bool
    employees_female: Annotated[int, Field(ge=0, le=10000)] = 0
    employees_male: Annotated[int, Field(ge=0, le=10000)] = 0
    monthly_income_band: IncomeBand = Field(description="Monthly income in IQD: none, under_250k, 250k_500k, "
                                                        "500k_1m, 1m_2m, over_2m.")
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = None
    notes: Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)] | None = Field(
        default=None, description="Kept on the visit only: never in events.")

    @model_validator(mode="after")
    def _gps(self) -> MonitoringVisitCreate:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("a GPS point needs both latitude and longitude")
        return self


class MonitoringVisitPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    grant_id: str
    visited_on: date
    business_operating: bool
    employees_female: int
    employees_male: int
    monthly_income_band: str
    latitude: float | None
    longitude: float | None
    notes: str | None
    created_at: UtcDatetime


class PersonErasure(Strict):
    beneficiary_id: str = Field(max_length=64)


class PersonErased(BaseModel):
    grants_erased: int
