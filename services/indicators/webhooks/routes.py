"""HTTP routes of outbound webhooks (admin only): thin, the logic is in webhooks/service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from services.indicators.webhooks import service as svc
from services.indicators.webhooks.models import WebhookSubscription
from services.indicators.webhooks.schemas import (
    DeliveryStatus,
    WebhookAttemptPublic,
    WebhookDeliveryPublic,
    WebhookSubscriptionCreate,
    WebhookSubscriptionPublic,
    WebhookSubscriptionWithSecret,
)
from shared.auth import require_roles
from shared.db import SessionDep, after_commit

Admin = require_roles()  # admin only

webhooks = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@webhooks.post("", status_code=201, response_model=WebhookSubscriptionWithSecret)
async def create_webhook_subscription(request: Request, body: WebhookSubscriptionCreate, session: SessionDep,
                                      principal: Admin) -> WebhookSubscriptionWithSecret:
    """Subscribe a partner system to event types in some governorates. The answer holds the signing secret,
    shown once. Each event is POSTed as its CloudEvent JSON with `webhook-id`, `webhook-timestamp` and
    `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, Standard Webhooks)."""
    subscription, secret = await svc.create_subscription(
        session=session, settings=request.app.state.settings, principal=principal, name=body.name, url=str(body.url),
        event_types=body.event_types, governorates=body.governorates)
    return WebhookSubscriptionWithSecret(**WebhookSubscriptionPublic.model_validate(subscription).model_dump(),
                                         secret=secret)


@webhooks.get("", response_model=list[WebhookSubscriptionPublic])
async def list_webhook_subscriptions(session: SessionDep, principal: Admin) -> list[WebhookSubscriptionPublic]:
    """Every subscription, newest first."""
    rows = (await session.execute(select(WebhookSubscription).order_by(
        WebhookSubscription.created_at.desc()))).scalars()  # type: ignore[attr-defined]
    return [WebhookSubscriptionPublic.model_validate(s) for s in rows]


@webhooks.get("/{subscription_id}", response_model=WebhookSubscriptionPublic)
async def get_webhook_subscription(subscription_id: str, session: SessionDep,
                                   principal: Admin) -> WebhookSubscriptionPublic:
    """One subscription: whether it is enabled and its run of failed attempts."""
    return WebhookSubscriptionPublic.model_validate(await svc.get_subscription(session=session,
                                                                               subscription_id=subscription_id))


@webhooks.post("/{subscription_id}/enable", response_model=WebhookSubscriptionPublic)
async def enable_webhook_subscription(request: Request, subscription_id: str, session: SessionDep,
                                      principal: Admin) -> WebhookSubscriptionPublic:
    """Re-enable a subscription disabled after too many failures: deliveries waiting meanwhile go out now."""
    subscription = await svc.enable_subscription(session=session, subscription_id=subscription_id)
    after_commit(session, request.app.state.webhook_wakeup.set)
    return WebhookSubscriptionPublic.model_validate(subscription)


@webhooks.get("/{subscription_id}/deliveries", response_model=list[WebhookDeliveryPublic])
async def list_webhook_deliveries(subscription_id: str, session: SessionDep, principal: Admin,
                                  status: DeliveryStatus | None = None,
                                  limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[WebhookDeliveryPublic]:
    """The delivery log, newest first: each delivery's status and every attempt with the receiver's status code."""
    rows = await svc.list_deliveries(session=session, subscription_id=subscription_id, status=status, limit=limit)
    return [_delivery(d, attempts) for d, attempts in rows]


@webhooks.post("/{subscription_id}/deliveries/{delivery_id}/redeliver", status_code=202,
               response_model=WebhookDeliveryPublic)
async def redeliver_webhook(request: Request, subscription_id: str, delivery_id: str, session: SessionDep,
                            principal: Admin) -> WebhookDeliveryPublic:
    """Send a delivery again now (failed or already delivered), with the same `webhook-id` so the receiver can
    tell it is the same event, and a fresh run of retries."""
    delivery = await svc.redeliver(session=session, subscription_id=subscription_id, delivery_id=delivery_id)
    after_commit(session, request.app.state.webhook_wakeup.set)
    return _delivery(delivery, [])


def _delivery(d: object, attempts: list[object]) -> WebhookDeliveryPublic:
    return WebhookDeliveryPublic(
        id=d.id, event_id=d.event_id, event_type=d.event_type, status=d.status,  # type: ignore[attr-defined]
        attempts=d.attempts, last_status_code=d.last_status_code,  # type: ignore[attr-defined]
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,  # type: ignore[attr-defined]
        created_at=d.created_at, delivered_at=d.delivered_at, redelivered_at=d.redelivered_at,  # type: ignore[attr-defined]
        log=[WebhookAttemptPublic.model_validate(a) for a in attempts])


routers = (webhooks,)
