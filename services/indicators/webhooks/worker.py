"""The webhooks' background workers: their own durable consumer of the stream, and the dispatcher."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.indicators.webhooks.service import WebhookDispatcher, WebhookFanOut
from shared.consumer import EventConsumer, Outcome
from shared.events import CloudEvent
from shared.settings import CommonSettings


class WebhookConsumer(EventConsumer):
    """The projections' consumer policy, except that nothing becomes a dead letter here: the service's dead
    letters are the projections' (replayed into them). An unreadable envelope has nothing to deliver (the
    projections' consumer keeps its dead letter); a fan-out failure is retried, with backoff, until it works."""

    async def settle(self, subject: str, payload: bytes, *, parked_id: str | None = None) -> Outcome:
        try:
            CloudEvent.model_validate_json(payload)
        except ValueError:
            return Outcome.SETTLED
        return await super().settle(subject, payload, parked_id=parked_id)


def _wakeup(app: FastAPI) -> asyncio.Event:
    if not hasattr(app.state, "webhook_wakeup"):
        app.state.webhook_wakeup = asyncio.Event()
    return app.state.webhook_wakeup


def webhook_consumer(app: FastAPI, settings: CommonSettings) -> WebhookConsumer:
    """A durable consumer of every event, apart from the projections' (its own name, its own position)."""
    durable = f"{settings.consumer_durable or settings.service_name}-webhooks"
    return WebhookConsumer(settings, app.state.sessionmaker, app.state.bus,
                           WebhookFanOut(settings.service_name, _wakeup(app)), durable=durable,
                           max_attempts=2**31, ack_wait=settings.consumer_ack_wait_seconds)


def webhook_dispatcher(app: FastAPI, settings: CommonSettings) -> WebhookDispatcher:
    return WebhookDispatcher(settings, app.state.sessionmaker, _wakeup(app))
