"""Tables of the beneficiaries service (never request or response bodies)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from shared.concurrency import Versioned
from shared.db import utcnow


def new_id() -> str:
    return str(uuid.uuid4())


class Community(SQLModel, table=True):
    __tablename__ = "communities"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    name_ar: str | None = Field(default=None, max_length=200)
    district_pcode: str = Field(max_length=16, index=True)
    governorate_pcode: str = Field(max_length=16, index=True)
    latitude: float | None = None
    longitude: float | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Household(SQLModel, table=True):
    __tablename__ = "households"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    community_id: str = Field(foreign_key="communities.id", max_length=36, index=True)
    size: int | None = None
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Beneficiary(Versioned, table=True):
    __tablename__ = "beneficiaries"
    # Duplicate detection compares a registration with the people of its block, nationwide: the blocking key
    # of the name chain and the birth year (matching.blocking_key), wherever they were registered.
    # The list, newest first, reads these in order and stops after a page (migration 0005_list_order).
    __table_args__ = (Index("ix_beneficiaries_blocking_key", "blocking_key", "birth_year"),
                      Index("ix_beneficiaries_live_order", "merged_into_id", "created_at", "id"),
                      Index("ix_beneficiaries_governorate_live_order", "governorate_pcode", "merged_into_id",
                            "created_at", "id"))

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    first_name: str = Field(max_length=100)
    father_name: str = Field(max_length=100)
    grandfather_name: str | None = Field(default=None, max_length=100)
    family_name: str | None = Field(default=None, max_length=100)
    search_key: str = Field(max_length=600)
    blocking_key: str = Field(max_length=80)
    sex: str = Field(max_length=8)
    date_of_birth: date
    birth_year: int
    displacement_status: str = Field(max_length=16, index=True)
    community_id: str = Field(foreign_key="communities.id", max_length=36, index=True)
    household_id: str | None = Field(default=None, foreign_key="households.id", max_length=36)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)
    phone: str | None = Field(default=None, max_length=32)
    national_id_hash: str | None = Field(default=None, max_length=64, unique=True)
    # The chain of key ids the hash was made with ("k1", or "k1>k2" once rotated): shared.pii.
    national_id_key: str | None = Field(default=None, max_length=200, index=True)
    disability: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    consent_obtained_on: date
    consent_withdrawn_on: date | None = None
    consent_withdrawal_reason: str | None = Field(default=None, max_length=500)
    merged_into_id: str | None = Field(default=None, max_length=36, index=True)
    erased_on: date | None = None  # personal data erased (on request or by retention): irreversible
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow, index=True)


class DuplicateReview(Versioned, table=True):
    """A probable duplicate pair waiting for (or given) a programme manager's decision.

    ``pair`` is the two ids in sorted order: a pair is listed once, whatever found it and however often.
    Reasons and score are recomputed from the records when shown, so no name is copied here.
    """

    __tablename__ = "duplicate_reviews"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    pair: str = Field(max_length=73, unique=True)
    beneficiary_id: str = Field(max_length=36, index=True)  # the later registration
    candidate_id: str = Field(max_length=36, index=True)    # the person it may duplicate
    score: float                                            # when found
    source: str = Field(max_length=16)                      # registration | update | rescan
    status: str = Field(default="open", max_length=16, index=True)  # open | distinct | merged
    decided_by: str | None = Field(default=None, max_length=255)
    decided_at: datetime | None = None
    survivor_id: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(default_factory=utcnow, index=True)


def review_pair(a: str, b: str) -> str:
    return "|".join(sorted((a, b)))
