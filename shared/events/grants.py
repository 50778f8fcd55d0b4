"""Events of the grants service (the contract; consumers import this, never the service).

Pseudonymous: ids, amounts, currency, dates, the call, the sector and where the person lives (community,
district, governorate). Never a business name, a reason, a note or a GPS point. ``revision`` is the
grant's version after the change, so a consumer can order an application's transitions.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import ClassVar, Literal

from shared.events import EventData

Currency = Literal["IQD", "USD"]


class _GrantEvent(EventData):
    service: ClassVar[str] = "grants"
    entity: ClassVar[str] = "grant"

    grant_id: str
    revision: int
    call_id: str | None = None
    beneficiary_id: str
    sector: str
    currency: Currency
    community_id: str
    district_pcode: str
    governorate_pcode: str


class GrantSubmitted(_GrantEvent):
    action: ClassVar[str] = "submitted"

    amount_requested: Decimal
    submitted_on: date


class GrantApproved(_GrantEvent):
    action: ClassVar[str] = "approved"

    amount_approved: Decimal
    approved_on: date


class GrantRejected(_GrantEvent):
    """The reason stays on the application only."""

    action: ClassVar[str] = "rejected"

    rejected_on: date


class GrantCancelled(_GrantEvent):
    """Cancelled by the programme, or withdrawn by the applicant (``by``); the approved amount, if any,
    returns to the call's budget."""

    action: ClassVar[str] = "cancelled"

    by: Literal["programme", "applicant"]
    cancelled_on: date


class _DisbursementEvent(_GrantEvent):
    entity: ClassVar[str] = "disbursement"

    disbursement_id: str
    tranche: int
    amount: Decimal
    disbursed_on: date


class DisbursementMade(_DisbursementEvent):
    """Money reached the person: they are directly assisted (indicators)."""

    action: ClassVar[str] = "made"


class DisbursementReversed(_DisbursementEvent):
    """A disbursement undone (returned, or recorded in error): every figure drops it. Carries the same facts
    as ``DisbursementMade``, so a consumer that sees the reversal first can keep a complete tombstone."""

    action: ClassVar[str] = "reversed"

    reversed_on: date


class MonitoringRecorded(EventData):
    service: ClassVar[str] = "grants"
    entity: ClassVar[str] = "monitoring_visit"
    action: ClassVar[str] = "recorded"

    visit_id: str
    grant_id: str
    call_id: str | None = None
    beneficiary_id: str
    visited_on: date
    business_operating: bool
    employees_female: int
    employees_male: int
    monthly_income_band: str
    community_id: str
    district_pcode: str
    governorate_pcode: str
