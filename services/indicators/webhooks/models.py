"""Tables of outbound webhooks: subscriptions, one delivery per (subscription, event), and each attempt."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from shared.db import utcnow


def new_id() -> str:
    return str(uuid.uuid4())


class WebhookSubscription(SQLModel, table=True):
    __tablename__ = "webhook_subscriptions"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    url: str = Field(max_length=2000)
    secret: str = Field(sa_column=Column(Text, nullable=False))  # sealed (shared.pii.seal): it signs every body
    event_types: list[str] = Field(sa_column=Column(JSON, nullable=False))  # ["*"] or CloudEvents types
    governorates: list[str] = Field(sa_column=Column(JSON, nullable=False))  # ["*"] or admin1 P-codes
    enabled: bool = True
    consecutive_failures: int = 0
    disabled_at: datetime | None = None
    created_by: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    # One delivery per event and subscription, however often the stream redelivers the event.
    __table_args__ = (UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)  # the `webhook-id` header
    subscription_id: str = Field(foreign_key="webhook_subscriptions.id", max_length=36, index=True)
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=255)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the CloudEvent as published
    status: str = Field(max_length=16, index=True)  # pending | succeeded | failed
    attempts: int = 0  # since it was queued or last re-delivered by hand
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = None
    redelivered_at: datetime | None = None  # last re-delivery asked by hand


class WebhookAttempt(SQLModel, table=True):
    """The delivery log: every attempt, with the receiver's status code or the error."""

    __tablename__ = "webhook_attempts"

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(foreign_key="webhook_deliveries.id", max_length=36, index=True)
    at: datetime = Field(default_factory=utcnow)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=500)
    succeeded: bool


WEBHOOK_TABLES: tuple[type[SQLModel], ...] = (WebhookSubscription, WebhookDelivery, WebhookAttempt)
