"""Tables of the feedback service (never request or response bodies).

Personal and sensitive text (a case's description, contact, internal notes, the response, a referral's
recipient) is stored sealed (``shared.pii.seal``: AES-GCM under a key derived from ``CRP_PII_KEY``), never in
clear. The PIN of the public status page is kept only as a keyed hash. Scope is local: a case, centre or
activity carries its community's district and governorate P-codes.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from shared.concurrency import Versioned
from shared.db import utcnow


def new_id() -> str:
    return str(uuid.uuid4())


class ResourceCentre(Versioned, table=True):
    """A community resource centre: where people get information, submit feedback and meet."""

    __tablename__ = "resource_centres"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    community_id: str = Field(max_length=36, index=True)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)
    opening_hours: str | None = Field(default=None, max_length=200)
    contact_channel: str | None = Field(default=None, max_length=200)  # the centre's, not a person's
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Feedback(Versioned, table=True):
    """A feedback case or complaint. ``sensitive`` cases exist only for ``psea_focal_point``."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_sensitive_status", "sensitive", "status"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    reference: str = Field(max_length=16, unique=True)
    channel: str = Field(max_length=16)
    category: str = Field(max_length=32)
    sensitive: bool
    description_sealed: str = Field(sa_column=Column(Text, nullable=False))
    anonymous: bool
    contact_sealed: str | None = Field(default=None, sa_column=Column(Text))
    pin_hash: str = Field(max_length=64)
    pin_key_chain: str = Field(max_length=200)
    community_id: str | None = Field(default=None, max_length=36, index=True)
    district_pcode: str | None = Field(default=None, max_length=16)
    governorate_pcode: str | None = Field(default=None, max_length=16, index=True)
    resource_centre_id: str | None = Field(default=None, foreign_key="resource_centres.id", max_length=36)
    status: str = Field(max_length=16)
    received_at: datetime
    acknowledge_due_at: datetime
    resolve_due_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    response_sealed: str | None = Field(default=None, sa_column=Column(Text))
    responded_at: datetime | None = None
    referred_to_sealed: str | None = Field(default=None, sa_column=Column(Text))
    referral_consent: bool | None = None
    referred_at: datetime | None = None
    satisfaction: str | None = Field(default=None, max_length=24)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class FeedbackHistory(SQLModel, table=True):
    """One dated step of a case's life (its intake included); the note is internal and sealed."""

    __tablename__ = "feedback_history"

    id: int | None = Field(default=None, primary_key=True)
    feedback_id: str = Field(foreign_key="feedback.id", max_length=36, index=True)
    status: str = Field(max_length=16)
    previous_status: str | None = Field(default=None, max_length=16)
    note_sealed: str | None = Field(default=None, sa_column=Column(Text))
    actor: str = Field(max_length=255)
    at: datetime


class PinThrottle(SQLModel, table=True):
    """Wrong PINs on the public status page, per reference (``ref:<reference>``) and per client address
    (``client:<address>``): the failures in the current window, and the end of a lock-out."""

    __tablename__ = "pin_throttle"

    key: str = Field(primary_key=True, max_length=80)
    failures: int = 0
    window_started_at: datetime
    locked_until: datetime | None = None


class CommunityActivity(SQLModel, table=True):
    """A dialogue session, reconciliation initiative, civic engagement or awareness event. Participants are
    counted (by sex and by group), not registered."""

    __tablename__ = "community_activities"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    kind: str = Field(max_length=24, index=True)
    community_id: str = Field(max_length=36, index=True)
    district_pcode: str = Field(max_length=16)
    governorate_pcode: str = Field(max_length=16, index=True)
    resource_centre_id: str | None = Field(default=None, foreign_key="resource_centres.id", max_length=36)
    held_on: date
    facilitators: str = Field(sa_column=Column(Text, nullable=False, default="[]"))  # JSON list
    participants_total: int
    participants_female: int
    participants_male: int
    participants_idp: int
    participants_returnee: int
    participants_host_community: int
    groups_represented: str = Field(sa_column=Column(Text, nullable=False, default="[]"))  # JSON list of codes
    outcome: str | None = Field(default=None, sa_column=Column(Text))
    follow_up_actions: str = Field(sa_column=Column(Text, nullable=False, default="[]"))  # JSON list
    created_at: datetime = Field(default_factory=utcnow, index=True)


TABLES = (ResourceCentre, Feedback, FeedbackHistory, PinThrottle, CommunityActivity)
