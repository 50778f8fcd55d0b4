"""Transactional outbox: events are rows written with the change, and a relay publishes them.

Guarantee: every committed event is delivered at least once, in no guaranteed order. Neither across
services nor within one service nor for one entity: a transaction that took its row's ``seq`` early
can commit after a later one and be published after it, several relays on PostgreSQL publish their
batches side by side, and consumers see redeliveries and dead-letter replays late. What an entity's
state needs ordered travels in its payload (e.g. ``revision`` on beneficiary snapshots); consumers are
idempotent (by event id) and give the same final state in any arrival order (``shared.consumer``).

The relay sends each row with ``Nats-Msg-Id`` = event id, so JetStream's duplicate window drops a row
sent twice (a crash between publish and mark). It reads rows in ``seq`` order (so the oldest go
first, not as a promise), is woken right after a commit, polls slowly as a safety net, keeps retrying
with backoff while NATS is down, and takes rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so
several replicas can run it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import Counter, Gauge
from sqlalchemy import BigInteger, Column, Integer, LargeBinary, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.bus import Bus
from shared.db import after_commit, reading, utcnow
from shared.events import CloudEvent, EventData
from shared.observability import trace_var
from shared.settings import CommonSettings
from shared.worker import BackgroundWorker, retry_forever

log = logging.getLogger("crp.outbox")

PUBLISHED = Counter("crp_outbox_published_total", "Outbox events published to JetStream", ["service"])
PUBLISH_ERRORS = Counter("crp_outbox_publish_errors_total", "Failed outbox publish attempts", ["service"])
PENDING = Gauge("crp_outbox_pending", "Outbox rows not yet published (last seen by the relay)", ["service"])


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox"

    seq: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True))
    event_id: str = Field(max_length=36, unique=True)
    subject: str = Field(max_length=255)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    published_at: datetime | None = Field(default=None, index=True)


class Outbox:
    """Adds events to the session's transaction and wakes the relay after the commit."""

    def __init__(self, settings: CommonSettings) -> None:
        self.settings = settings
        self.wakeup = asyncio.Event()

    def emit(self, session: AsyncSession, data: EventData, *, subject_id: str | None = None) -> CloudEvent:
        # The current trace travels with the event, so its consumers continue it.
        event = CloudEvent.wrap(data, source=self.settings.source, subject=subject_id, traceparent=trace_var.get())
        session.add(OutboxMessage(event_id=event.id, subject=data.subject(self.settings.subject_prefix),
                                  payload=event.model_dump_json().encode()))
        after_commit(session, self.wakeup.set)
        return event


class OutboxRelay(BackgroundWorker):
    def __init__(self, settings: CommonSettings, sessionmaker: async_sessionmaker[AsyncSession],
                 bus: Bus, outbox: Outbox, *, batch_size: int = 200, poll_seconds: float = 1.0) -> None:
        super().__init__()
        self.name = f"outbox-relay-{settings.service_name}"
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.outbox = outbox
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds

    async def run(self) -> None:
        retrying = retry_forever(f"{self.name} publish")
        while True:
            self.outbox.wakeup.clear()
            await self.bus.wait_ready()
            sent = await retrying(self.publish_batch)
            if sent == self.batch_size:
                continue  # more waiting
            try:  # woken right after a commit; the slow poll only catches rows of other processes
                await asyncio.wait_for(self.outbox.wakeup.wait(), self.poll_seconds)
            except TimeoutError:
                pass

    def _unsent(self, locked: bool) -> Any:
        table: Any = OutboxMessage.__table__  # type: ignore[attr-defined]
        stmt = (select(table.c.seq, table.c.event_id, table.c.subject, table.c.payload)
                .where(table.c.published_at.is_(None)).order_by(table.c.seq).limit(self.batch_size))
        return stmt.with_for_update(skip_locked=True) if locked else stmt

    async def _publish(self, rows: Sequence[Any]) -> tuple[list[Any], Exception | None]:
        """Publish rows side by side (each waits for its own acknowledgement, in one round trip's time rather than
        one per row); returns those JetStream acknowledged and the first error, if any."""
        js = self.bus.js
        assert js is not None
        results = await asyncio.gather(
            *(js.publish(row.subject, row.payload, headers={"Nats-Msg-Id": row.event_id}, timeout=5)
              for row in rows), return_exceptions=True)
        sent = [row for row, result in zip(rows, results, strict=True) if not isinstance(result, BaseException)]
        error = next((r for r in results if isinstance(r, BaseException)), None)
        if error is not None and not isinstance(error, Exception):  # a cancellation: not ours to swallow
            raise error
        return sent, error

    async def _mark_published(self, session: AsyncSession, sent: Sequence[Any]) -> None:
        table: Any = OutboxMessage.__table__  # type: ignore[attr-defined]
        await session.execute(update(table).where(table.c.seq.in_([r.seq for r in sent]))
                              .values(published_at=utcnow()))

    async def publish_batch(self) -> int:
        """Publish up to one batch of unsent rows, oldest first; returns how many were sent."""
        if not self.bus.connected:
            PUBLISH_ERRORS.labels(self.settings.service_name).inc()
            raise ConnectionError("not connected to NATS")
        async with self.sessionmaker() as session:
            if session.bind.dialect.name == "postgresql":
                # Rows stay locked while they are published, so replicas never send the same row together.
                async with session.begin():
                    rows = (await session.execute(self._unsent(locked=True))).all()
                    sent, error = await self._publish(rows)
                    if sent:
                        await self._mark_published(session, sent)
            else:
                # SQLite has one relay per service; holding its write lock while NATS answers would stall
                # every writer, so read (without taking the write lock), publish, then mark in a second short
                # transaction.
                with reading():
                    async with session.begin():
                        rows = (await session.execute(self._unsent(locked=False))).all()
                sent, error = await self._publish(rows) if rows else ([], None)
                if sent:
                    async with session.begin():
                        await self._mark_published(session, sent)
        if sent:
            PUBLISHED.labels(self.settings.service_name).inc(len(sent))
        PENDING.labels(self.settings.service_name).set(len(rows) - len(sent))
        if error is not None:
            PUBLISH_ERRORS.labels(self.settings.service_name).inc()
            raise error
        return len(sent)


async def get_outbox(request: Request) -> Outbox:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop for every write request
    return request.app.state.outbox


OutboxDep = Annotated[Outbox, Depends(get_outbox)]
