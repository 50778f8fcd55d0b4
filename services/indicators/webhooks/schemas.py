"""Request and response bodies of outbound webhooks."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, StringConstraints

from shared.db import UtcDatetime
from shared.schemas import Strict

EventType = Annotated[str, StringConstraints(pattern=r"^(\*|crp\.[a-z_]+\.[a-z_]+\.[a-z_]+\.v\d+)$")]
Governorate = Annotated[str, StringConstraints(pattern=r"^(\*|IQG\d{2})$")]
DeliveryStatus = Literal["pending", "succeeded", "failed"]


class WebhookSubscriptionCreate(Strict):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="Who it is for, e.g. the partner system.")
    url: AnyHttpUrl = Field(description="Where events are POSTed (https in production).")
    event_types: list[EventType] = Field(min_length=1, max_length=100, examples=[[
        "crp.beneficiaries.beneficiary.registered.v1"]], description='CloudEvents types, or ["*"] for all.')
    governorates: list[Governorate] = Field(min_length=1, max_length=20, examples=[["IQG15"]],
                                            description='Admin1 P-codes whose events are sent, or ["*"] for all.')


class WebhookSubscriptionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    url: str
    event_types: list[str]
    governorates: list[str]
    enabled: bool = Field(description="False once it failed too often in a row; re-enable it by hand.")
    consecutive_failures: int
    disabled_at: UtcDatetime | None
    created_at: UtcDatetime


class WebhookSubscriptionWithSecret(WebhookSubscriptionPublic):
    secret: str = Field(description="`whsec_...`: verify each delivery's `webhook-signature` with it (Standard "
                                    "Webhooks). Shown once.")


class WebhookAttemptPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: UtcDatetime
    status_code: int | None = Field(description="The receiver's HTTP status (none when it could not be reached).")
    error: str | None
    succeeded: bool


class WebhookDeliveryPublic(BaseModel):
    id: str = Field(description="The `webhook-id` header: the same on every attempt and re-delivery.")
    event_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    next_attempt_at: UtcDatetime | None
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None
    redelivered_at: UtcDatetime | None
    log: list[WebhookAttemptPublic]
