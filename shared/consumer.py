"""Idempotent JetStream consumer: durable pull, explicit acks, dead letters, replay from the stream.

Each event id is recorded in ``processed_events`` in the same transaction as the projection
change it caused, so a redelivery is a no-op. A message that keeps failing is kept as a dead
letter after ``max_deliver`` attempts; dead letters can be listed and replayed.
Rebuilding a projection from the stream: ``shared.rebuild``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter
from sqlalchemy import Column, Text, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.bus import Bus
from shared.db import utcnow
from shared.events import CloudEvent
from shared.settings import CommonSettings
from shared.worker import BackgroundWorker, retry_forever

log = logging.getLogger("crp.consumer")

APPLIED = Counter("crp_events_applied_total", "Events applied to projections", ["service", "type"])
DUPLICATES = Counter("crp_events_duplicate_total", "Redelivered events skipped", ["service"])
DEAD = Counter("crp_events_dead_lettered_total", "Events moved to dead letters", ["service"])

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_events"

    event_id: str = Field(primary_key=True, max_length=36)
    event_type: str = Field(max_length=255)
    processed_at: datetime = Field(default_factory=utcnow)


class DeadLetter(SQLModel, table=True):
    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str | None = Field(default=None, max_length=36, index=True)
    subject: str = Field(max_length=255)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    error: str = Field(sa_column=Column(Text, nullable=False))
    deliveries: int = 0
    created_at: datetime = Field(default_factory=utcnow)


# The consumer's own tables: a rebuild replaces them together with the projection's tables.
CONSUMER_TABLES: tuple[type[SQLModel], ...] = (ProcessedEvent, DeadLetter)


class EventApplier:
    """Applies one event exactly once to a database, whatever path it arrives by."""

    def __init__(self, service: str, handlers: dict[str, Handler]) -> None:
        self.service = service
        self.handlers = handlers

    async def apply(self, session: AsyncSession, event: CloudEvent) -> bool:
        """Apply within the caller's transaction. False when already applied."""
        if await session.get(ProcessedEvent, event.id) is not None:
            DUPLICATES.labels(self.service).inc()
            return False
        handler = self.handlers.get(event.type)
        if handler is not None:
            await handler(session, event)
        session.add(ProcessedEvent(event_id=event.id, event_type=event.type))
        await session.flush()
        APPLIED.labels(self.service, event.type).inc()
        return True


class EventConsumer(BackgroundWorker):
    def __init__(
        self, settings: CommonSettings, sessionmaker: async_sessionmaker[AsyncSession], bus: Bus,
        applier: EventApplier, *, durable: str, filter_subject: str | None = None,
        max_deliver: int = 5, batch_size: int = 100, ack_wait: float = 30.0,
    ) -> None:
        super().__init__()
        self.name = f"consumer-{durable}"
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.applier = applier
        self.durable = durable
        self.filter_subject = filter_subject or f"{settings.subject_prefix}.>"
        self.max_deliver = max_deliver
        self.batch_size = batch_size
        self.ack_wait = ack_wait

    async def run(self) -> None:
        retrying = retry_forever(self.name)
        while True:
            await retrying(self._consume_until_reconnect)

    async def _consume_until_reconnect(self) -> None:
        js = await self.bus.wait_ready()
        generation = self.bus.generation
        sub = await js.pull_subscribe(
            self.filter_subject, durable=self.durable, stream=self.settings.nats_stream,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_deliver=self.max_deliver,
                                  ack_wait=self.ack_wait, deliver_policy=DeliverPolicy.ALL, max_ack_pending=10_000),
        )
        try:
            # After a reconnect the pull subscription is made again (nats.py issue 504).
            while self.bus.generation == generation:
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=1)
                except (NatsTimeoutError, TimeoutError):
                    continue
                for msg in msgs:
                    await self._handle(msg)
        finally:
            await sub.unsubscribe()

    async def _handle(self, msg: object) -> None:
        data: bytes = msg.data  # type: ignore[attr-defined]
        try:
            event = CloudEvent.model_validate_json(data)
        except ValueError as exc:  # poison message: no retry can fix it
            await self._dead_letter(msg, None, f"invalid envelope: {exc}")
            await msg.term()  # type: ignore[attr-defined]
            return
        try:
            async with self.sessionmaker() as session, session.begin():
                await self.applier.apply(session, event)
        except Exception as exc:
            deliveries = msg.metadata.num_delivered  # type: ignore[attr-defined]
            log.warning("event %s (%s) failed on delivery %d: %s", event.id, event.type, deliveries, exc)
            if deliveries >= self.max_deliver:
                await self._dead_letter(msg, event.id, f"{type(exc).__name__}: {exc}")
                await msg.term()  # type: ignore[attr-defined]
            else:
                await msg.nak(delay=min(0.5 * 2 ** deliveries, 10))  # type: ignore[attr-defined]
            return
        await msg.ack()  # type: ignore[attr-defined]

    async def _dead_letter(self, msg: object, event_id: str | None, error: str) -> None:
        DEAD.labels(self.settings.service_name).inc()
        async with self.sessionmaker() as session, session.begin():
            session.add(DeadLetter(
                event_id=event_id, subject=msg.subject,  # type: ignore[attr-defined]
                payload=msg.data.decode(errors="replace"),  # type: ignore[attr-defined]
                error=error[:2000], deliveries=msg.metadata.num_delivered,  # type: ignore[attr-defined]
            ))


async def list_dead_letters(session: AsyncSession) -> list[DeadLetter]:
    return list((await session.execute(select(DeadLetter).order_by(DeadLetter.id))).scalars())


async def replay_dead_letter(*, session: AsyncSession, applier: EventApplier, dead_letter_id: int) -> bool:
    """Apply a dead letter's event again; on success it is removed. LookupError when there is no such record."""
    dead = await session.get(DeadLetter, dead_letter_id)
    if dead is None:
        raise LookupError(dead_letter_id)
    event = CloudEvent.model_validate_json(dead.payload)
    applied = await applier.apply(session, event)
    await session.delete(dead)
    return applied
