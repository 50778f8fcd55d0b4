"""The webhooks' background workers: their own durable consumer of the stream, and the dispatcher."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from services.indicators.webhooks.service import WebhookDispatcher, WebhookFanOut
from shared.consumer import EventConsumer
from shared.settings import CommonSettings


def _wakeup(app: FastAPI) -> asyncio.Event:
    if not hasattr(app.state, "webhook_wakeup"):
        app.state.webhook_wakeup = asyncio.Event()
    return app.state.webhook_wakeup


def webhook_consumer(app: FastAPI, settings: CommonSettings) -> EventConsumer:
    """A durable consumer of every event, apart from the projections' (its own name, its own position)."""
    durable = f"{settings.consumer_durable or settings.service_name}-webhooks"
    return EventConsumer(settings, app.state.sessionmaker, app.state.bus,
                         WebhookFanOut(settings.service_name, _wakeup(app)), durable=durable,
                         max_attempts=settings.consumer_max_attempts, ack_wait=settings.consumer_ack_wait_seconds)


def webhook_dispatcher(app: FastAPI, settings: CommonSettings) -> WebhookDispatcher:
    return WebhookDispatcher(settings, app.state.sessionmaker, _wakeup(app))
