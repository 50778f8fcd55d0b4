"""Outbound webhooks: fan-out of stream events into deliveries, signing, sending with backoff, the log.

Fed by a durable JetStream consumer of its own (``shared.consumer.EventConsumer`` with ``WebhookFanOut``): an
event is acked only once its deliveries are committed, and a database or NATS outage never counts as an
attempt, so no delivery is silently dropped. Deliveries are then sent by ``WebhookDispatcher``: signed with
the Standard Webhooks scheme, retried with exponential backoff, every attempt logged; a subscription that
fails ``webhook_disable_after_failures`` attempts in a row is disabled (its deliveries wait) until an admin
re-enables it. Payloads are the pseudonymous CloudEvents exactly as published. Functions add and flush.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import time
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from shared.auth import Principal
from shared.consumer import EventApplier
from shared.db import reading, utcnow
from shared.errors import NotFound
from shared.events import CloudEvent
from shared.pii import seal, unseal
from shared.settings import CommonSettings
from shared.worker import BackgroundWorker, retry_forever

log = logging.getLogger("crp.webhooks")
ALL = "*"


# -- signing (https://www.standardwebhooks.com) ---------------------------------------------------
def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` under the secret's key (the base64 after ``whsec_``)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = int(now if now is not None else time.time())
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, msg_id, timestamp, body), "content-type": "application/json"}


# -- subscriptions ------------------------------------------------------------------------------------
async def create_subscription(*, session: AsyncSession, settings: CommonSettings, principal: Principal, name: str,
                              url: str, event_types: list[str], governorates: list[str]
                              ) -> tuple[WebhookSubscription, str]:
    """A subscription and its secret (shown once; kept sealed, since every delivery is signed with it)."""
    secret = new_secret()
    subscription = WebhookSubscription(name=name, url=url, secret=seal(settings, secret),
                                       event_types=sorted(set(event_types)), governorates=sorted(set(governorates)),
                                       created_by=principal.sub)
    session.add(subscription)
    await session.flush()
    return subscription, secret


async def get_subscription(*, session: AsyncSession, subscription_id: str) -> WebhookSubscription:
    subscription = await session.get(WebhookSubscription, subscription_id)
    if subscription is None:
        raise NotFound(f"No webhook subscription {subscription_id}")
    return subscription


async def enable_subscription(*, session: AsyncSession, subscription_id: str) -> WebhookSubscription:
    """Re-enable by hand: the failure run starts again and the waiting deliveries go out now."""
    subscription = await get_subscription(session=session, subscription_id=subscription_id)
    await session.execute(update(WebhookSubscription).where(WebhookSubscription.id == subscription_id)  # type: ignore[arg-type]
                          .values(enabled=True, consecutive_failures=0, disabled_at=None))
    await session.execute(update(WebhookDelivery).where(
        WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.status == "pending")  # type: ignore[arg-type]
        .values(next_attempt_at=utcnow()))
    await session.refresh(subscription)
    return subscription


async def list_deliveries(*, session: AsyncSession, subscription_id: str, status: str | None, limit: int
                          ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """The delivery log, newest first, each delivery with its attempts."""
    await get_subscription(session=session, subscription_id=subscription_id)
    stmt = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    deliveries = list((await session.execute(stmt.order_by(WebhookDelivery.created_at.desc(),  # type: ignore[attr-defined]
                                                           WebhookDelivery.id).limit(limit))).scalars())
    attempts: dict[str, list[WebhookAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for attempt in (await session.execute(select(WebhookAttempt).where(
                WebhookAttempt.delivery_id.in_(list(attempts))).order_by(WebhookAttempt.id))).scalars():  # type: ignore[attr-defined]
            attempts[attempt.delivery_id].append(attempt)
    return [(d, attempts[d.id]) for d in deliveries]


async def redeliver(*, session: AsyncSession, subscription_id: str, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again (whatever its status), with a fresh retry budget and the same ``webhook-id``."""
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.subscription_id != subscription_id:
        raise NotFound(f"No delivery {delivery_id} for webhook subscription {subscription_id}")
    await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)  # type: ignore[arg-type]
                          .values(status="pending", attempts=0, next_attempt_at=utcnow(), redelivered_at=utcnow()))
    await session.refresh(delivery)
    return delivery


# -- fan-out: stream events into deliveries --------------------------------------------------------------
def _matches(subscription: WebhookSubscription, event: CloudEvent) -> bool:
    if ALL not in subscription.event_types and event.type not in subscription.event_types:
        return False
    if ALL in subscription.governorates:
        return True
    # A subscription scoped to governorates hears only events located in them.
    return event.data.get("governorate_pcode") in subscription.governorates


class WebhookFanOut(EventApplier):
    """Turns each event into one delivery per matching subscription (idempotent: unique per event)."""

    def __init__(self, service: str, wakeup: asyncio.Event) -> None:
        super().__init__(f"{service}-webhooks", {})
        self.wakeup = wakeup

    async def apply(self, session: AsyncSession, event: CloudEvent) -> bool:
        subscriptions = (await session.execute(select(WebhookSubscription))).scalars().all()
        wanted = [s.id for s in subscriptions if _matches(s, event)]
        if not wanted:
            return False
        have = set((await session.execute(select(WebhookDelivery.subscription_id).where(
            WebhookDelivery.event_id == event.id))).scalars())
        payload = event.model_dump_json()
        for subscription_id in wanted:
            if subscription_id not in have:  # a redelivered event adds nothing (the unique key backs this up)
                session.add(WebhookDelivery(subscription_id=subscription_id, event_id=event.id,
                                            event_type=event.type, payload=payload, status="pending"))
        await session.flush()
        self.wakeup.set()
        return True

    async def parked_to_apply(self, session: AsyncSession) -> list[Any]:
        return []  # every type is handled: nothing is ever parked


# -- sending -----------------------------------------------------------------------------------------------
class WebhookDispatcher(BackgroundWorker):
    """Sends due deliveries of enabled subscriptions, records every attempt, schedules retries.

    A delivery is claimed with a conditioned UPDATE (its ``next_attempt_at`` pushed past the send timeout)
    before it is sent, so replicas never send the same attempt twice; a process that dies mid-send leaves
    the claim to expire and the delivery is retried.
    """

    def __init__(self, settings: Any, sessionmaker: async_sessionmaker[AsyncSession], wakeup: asyncio.Event,
                 *, poll_seconds: float = 1.0, batch_size: int = 20) -> None:
        super().__init__()
        self.name = f"webhooks-{settings.service_name}"
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.wakeup = wakeup
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        self.client: httpx.AsyncClient | None = None

    async def run(self) -> None:
        self.client = httpx.AsyncClient(timeout=self.settings.webhook_timeout_seconds, follow_redirects=False)
        retrying = retry_forever(self.name)
        try:
            while True:
                self.wakeup.clear()
                if await retrying(self.send_due) == self.batch_size:
                    continue
                try:
                    await asyncio.wait_for(self.wakeup.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
        finally:
            await self.client.aclose()

    async def _claim(self) -> list[tuple[WebhookDelivery, WebhookSubscription]]:
        now = utcnow()
        with reading():
            async with self.sessionmaker() as session:
                due = (await session.execute(
                    select(WebhookDelivery, WebhookSubscription)
                    .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)  # type: ignore[arg-type]
                    .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,  # type: ignore[arg-type]
                           WebhookSubscription.enabled.is_(True))  # type: ignore[attr-defined]
                    .order_by(WebhookDelivery.next_attempt_at).limit(self.batch_size))).all()
        if not due:
            return []
        lease = now + timedelta(seconds=self.settings.webhook_timeout_seconds + 30)
        claimed = []
        async with self.sessionmaker() as session, session.begin():
            for delivery, subscription in due:
                result = await session.execute(update(WebhookDelivery).where(
                    WebhookDelivery.id == delivery.id, WebhookDelivery.status == "pending",  # type: ignore[arg-type]
                    WebhookDelivery.next_attempt_at == delivery.next_attempt_at,  # type: ignore[arg-type]
                    WebhookDelivery.attempts == delivery.attempts).values(next_attempt_at=lease))  # type: ignore[arg-type]
                if result.rowcount == 1:
                    claimed.append((delivery, subscription))
        return claimed

    async def send_due(self) -> int:
        """Send one batch of due deliveries; returns how many were claimed."""
        claimed = await self._claim()
        if claimed:
            results = await asyncio.gather(*(self._send(d, s) for d, s in claimed))
            async with self.sessionmaker() as session, session.begin():
                for (delivery, subscription), (code, error) in zip(claimed, results, strict=True):
                    await self._record(session, delivery, subscription, code, error)
        return len(claimed)

    async def _send(self, delivery: WebhookDelivery, subscription: WebhookSubscription
                    ) -> tuple[int | None, str | None]:
        assert self.client is not None
        body = delivery.payload.encode()
        headers = signed_headers(unseal(self.settings, subscription.secret), delivery.id, body)
        try:
            response = await self.client.post(subscription.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        return response.status_code, None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"

    async def _record(self, session: AsyncSession, delivery: WebhookDelivery, subscription: WebhookSubscription,
                      code: int | None, error: str | None) -> None:
        now = utcnow()
        ok = error is None
        attempts = delivery.attempts + 1
        session.add(WebhookAttempt(delivery_id=delivery.id, at=now, status_code=code, error=error, succeeded=ok))
        values: dict[str, Any] = dict(attempts=attempts, last_status_code=code, last_error=error)
        if ok:
            values.update(status="succeeded", delivered_at=now)
        elif attempts >= self.settings.webhook_max_attempts:
            values.update(status="failed")
        else:
            delay = min(self.settings.webhook_retry_max_seconds,
                        self.settings.webhook_retry_base_seconds * 2 ** (attempts - 1))
            values.update(next_attempt_at=now + timedelta(seconds=delay))
        await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values))  # type: ignore[arg-type]
        table = WebhookSubscription.__table__  # type: ignore[attr-defined]
        if ok:
            await session.execute(table.update().where(table.c.id == subscription.id).values(consecutive_failures=0))
            return
        # Counted in the database (one UPDATE), so replicas and concurrent batches add up correctly.
        await session.execute(table.update().where(table.c.id == subscription.id)
                              .values(consecutive_failures=table.c.consecutive_failures + 1))
        await session.execute(table.update().where(
            table.c.id == subscription.id, table.c.enabled.is_(True),
            table.c.consecutive_failures >= self.settings.webhook_disable_after_failures,
        ).values(enabled=False, disabled_at=now))
        log.warning("webhook delivery %s to subscription %s failed (attempt %d): %s", delivery.id,
                    subscription.id, attempts, error)
