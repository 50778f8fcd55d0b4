"""Tables of the grants service (never request or response bodies).

Amounts are exact decimals (two places). Calls, grants and disbursements are ``Versioned``: every
transition is a version-checked UPDATE. The budget cap and the disbursement cap are running totals on the
parent row (``GrantCall.committed_amount``, ``Grant.disbursed_amount``), changed in the same transaction
as the child, so two concurrent approvals or disbursements conflict: one wins, the other is 409.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Column, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.concurrency import Versioned
from shared.db import utcnow

Money = Numeric(16, 2)


def new_id() -> str:
    return str(uuid.uuid4())


class GrantCall(Versioned, table=True):
    """A round of grants: budget, dates, eligibility, scoring criteria, tranches."""

    __tablename__ = "grant_calls"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    sector: str = Field(max_length=100, index=True)
    budget: Decimal = Field(sa_column=Column(Money, nullable=False))
    currency: str = Field(max_length=3)
    committed_amount: Decimal = Field(default=Decimal(0), sa_column=Column(Money, nullable=False))
    opens_on: date
    closes_on: date
    eligibility: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    criteria: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    tranches: int = 1
    monitoring_required: bool = False
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Grant(Versioned, table=True):
    """An application, then the grant it becomes. The person's location is a pseudonymous copy taken at
    submission (scope and events); ``beneficiary_id`` is the survivor of any merge known then."""

    __tablename__ = "grants"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    call_id: str | None = Field(default=None, foreign_key="grant_calls.id", max_length=36, index=True)
    beneficiary_id: str = Field(max_length=36, index=True)
    requested_beneficiary_id: str = Field(max_length=36)
    business_name: str = Field(max_length=200)
    sector: str = Field(max_length=100)
    currency: str = Field(max_length=3)
    amount_requested: Decimal = Field(sa_column=Column(Money, nullable=False))
    amount_approved: Decimal | None = Field(default=None, sa_column=Column(Money, nullable=True))
    disbursed_amount: Decimal = Field(default=Decimal(0), sa_column=Column(Money, nullable=False))
    status: str = Field(max_length=20, index=True)
    decision_reason: str | None = Field(default=None, max_length=500)
    score: float | None = None
    has_disability: bool = False
    community_id: str = Field(max_length=36, index=True)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)
    submitted_on: date
    decided_on: date | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class GrantScore(SQLModel, table=True):
    """One named scorer's marks for one application (scoring again replaces them)."""

    __tablename__ = "grant_scores"
    __table_args__ = (UniqueConstraint("grant_id", "scorer", name="uq_grant_scores_grant_scorer"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    grant_id: str = Field(foreign_key="grants.id", max_length=36, index=True)
    scorer: str = Field(max_length=255)
    marks: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    total: float
    created_at: datetime = Field(default_factory=utcnow)


class Disbursement(Versioned, table=True):
    __tablename__ = "disbursements"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    grant_id: str = Field(foreign_key="grants.id", max_length=36, index=True)
    tranche: int
    amount: Decimal = Field(sa_column=Column(Money, nullable=False))
    disbursed_on: date
    reversed_on: date | None = None
    reversal_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class SupportSession(SQLModel, table=True):
    """Technical support: a coaching or mentoring session for a grant's business."""

    __tablename__ = "support_sessions"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    grant_id: str = Field(foreign_key="grants.id", max_length=36, index=True)
    kind: str = Field(max_length=16)
    held_on: date
    topic: str = Field(max_length=200)
    provider: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class MonitoringVisit(SQLModel, table=True):
    __tablename__ = "monitoring_visits"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    grant_id: str = Field(foreign_key="grants.id", max_length=36, index=True)
    visited_on: date
    business_operating: bool
    employees_female: int
    employees_male: int
    monthly_income_band: str = Field(max_length=16)
    latitude: float | None = None
    longitude: float | None = None
    notes: str | None = Field(default=None, max_length=2000)
    created_at: datetime = Field(default_factory=utcnow, index=True)
