"""Idempotent JetStream consumer: durable pull, explicit acks, dead letters, parked events, replay.

Events arrive at least once, in no guaranteed order, neither across services nor within one (see
``shared.outbox``). Each event id is recorded in ``processed_events`` in the same transaction as the
projection change it caused, so a redelivery is a no-op; every handler must give the same final state
in any arrival order (what an entity needs ordered travels in its payload, e.g. ``revision``), which
``tests/indicators/test_projection_order.py`` checks for every handler.

What happens to a message (``apply_or_dead_letter`` is the policy, for the live consumer and a rebuild):

- applied, or recorded as a duplicate, then acked;
- of a type this version has no handler for: parked (``parked_events``) and acked; it is applied,
  exactly once, as soon as a version that handles it runs (``EventConsumer`` applies parked events
  at start and every ``parked_interval`` seconds, for replicas of an older version still parking);
- failing on a healthy database ``max_attempts`` times (counted here, in memory, while the message is
  held; not by JetStream, and a restart counts again): a poison. It is terminated only after its dead
  letter is committed; dead letters can be listed and replayed;
- failing because the database is unreachable (a connection-type error, or a fresh ``SELECT 1``
  fails): not an attempt at the event. The consumer holds the message and the rest of its batch
  (``in_progress``, so JetStream does not redeliver them), waits with the shared backoff until the
  database answers, and tries the same event again, for as long as it takes.

NATS being unreachable costs nothing either: an ack or termination that does not arrive only means a
redelivery, which is a duplicate (or, for a poison, finds its dead letter already written). JetStream's
``max_deliver`` is therefore unlimited and its delivery count unused: a message JetStream stops
delivering is a message lost, since nothing here would ever see it again.

Rebuilding a projection from the stream: ``shared.rebuild``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter, Gauge
from sqlalchemy import Column, Text, delete, select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.bus import Bus
from shared.db import UtcDatetime, database_answers, is_connection_error, utcnow
from shared.events import CloudEvent
from shared.observability import continue_trace
from shared.settings import CommonSettings
from shared.worker import BackgroundWorker, backoff_seconds, retry_forever

log = logging.getLogger("crp.consumer")

APPLIED = Counter("crp_events_applied_total", "Events applied to projections", ["service", "type"])
DUPLICATES = Counter("crp_events_duplicate_total", "Redelivered events skipped", ["service"])
DEAD = Counter("crp_events_dead_lettered_total", "Events moved to dead letters", ["service"])
PARKED = Counter("crp_events_parked_total", "Events of a type with no handler yet, kept for a newer version",
                 ["service", "type"])
UNAVAILABLE = Counter("crp_consumer_database_unavailable_total",
                      "Event attempts that failed because the database was unreachable (never counted)", ["service"])

# Set when /metrics is scraped (``EventConsumer.refresh_lag``); absent while NATS cannot say.
STREAM_SEQUENCE = Gauge("crp_consumer_stream_sequence", "The stream's last sequence, as seen by the consumer",
                        ["service", "consumer"])
APPLIED_SEQUENCE = Gauge("crp_consumer_applied_sequence", "The consumer's acknowledged floor: every event up to "
                         "this stream sequence is settled (applied, duplicate, parked or dead-lettered)",
                         ["service", "consumer"])
LAG = Gauge("crp_consumer_lag_events", "Consumer lag: stream sequence minus applied sequence",
            ["service", "consumer"])

Handler = Callable[[AsyncSession, CloudEvent], Awaitable[None]]


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_events"

    event_id: str = Field(primary_key=True, max_length=36)
    event_type: str = Field(max_length=255)
    # Indexed: the indicators summary's ``as_of`` is the latest (its migration 0006_fast_rebuild adds the index).
    processed_at: datetime = Field(default_factory=utcnow, index=True)


class DeadLetter(SQLModel, table=True):
    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str | None = Field(default=None, max_length=36, index=True)
    subject: str = Field(max_length=255)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    error: str = Field(sa_column=Column(Text, nullable=False))
    deliveries: int = 0  # attempts on a healthy database
    created_at: datetime = Field(default_factory=utcnow)


class ParkedEvent(SQLModel, table=True):
    """An event of a type this version has no handler for, kept until a version that has one runs."""

    __tablename__ = "parked_events"

    event_id: str = Field(primary_key=True, max_length=36)
    event_type: str = Field(max_length=255, index=True)
    subject: str | None = Field(default=None, max_length=255)  # the CloudEvents subject (the entity)
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the whole envelope, as received
    time: UtcDatetime  # the event's own time: parked events are applied oldest first
    parked_at: datetime = Field(default_factory=utcnow)


CONSUMER_TABLES: tuple[type[SQLModel], ...] = (ProcessedEvent, DeadLetter, ParkedEvent)
"""The tables every consuming service has beside its projections."""


class EventApplier:
    """Applies one event exactly once to a database, whatever path it arrives by."""

    def __init__(self, service: str, handlers: dict[str, Handler]) -> None:
        self.service = service
        self.handlers = handlers

    async def apply(self, session: AsyncSession, event: CloudEvent) -> bool:
        """Apply within the caller's transaction. False when already applied, or parked for a newer version."""
        if await session.get(ProcessedEvent, event.id) is not None:
            DUPLICATES.labels(self.service).inc()
            return False
        handler = self.handlers.get(event.type)
        if handler is None:
            if await session.get(ParkedEvent, event.id) is None:
                session.add(ParkedEvent(event_id=event.id, event_type=event.type, subject=event.subject,
                                        payload=event.model_dump_json(), time=event.time))
                await session.flush()
                PARKED.labels(self.service, event.type).inc()
            return False
        await handler(session, event)
        session.add(ProcessedEvent(event_id=event.id, event_type=event.type))
        await session.flush()
        APPLIED.labels(self.service, event.type).inc()
        return True

    async def parked_to_apply(self, session: AsyncSession) -> list[ParkedEvent]:
        """Parked events whose type now has a handler, oldest first."""
        stmt = (select(ParkedEvent).where(ParkedEvent.event_type.in_(list(self.handlers)))  # type: ignore[attr-defined]
                .order_by(ParkedEvent.time, ParkedEvent.event_id))
        return list((await session.execute(stmt)).scalars())


class DatabaseUnavailable(Exception):
    """The database could not be reached: an infrastructure failure, never an attempt at the event."""


class Outcome(enum.Enum):
    SETTLED = "settled"  # applied, a duplicate, or parked: ack the message
    RETRY = "retry"  # failed on a healthy database, attempts remain: try again in a new transaction
    DEAD_LETTERED = "dead_lettered"  # its dead letter is in the caller's transaction: terminate after the commit


async def apply_or_dead_letter(session: AsyncSession, applier: EventApplier, *, subject: str, payload: bytes,
                               attempt: int, max_attempts: int) -> Outcome:
    """One attempt at a message, in the caller's transaction, with the consumer's poison policy.

    The event is applied in a savepoint, so a failing handler leaves the transaction usable. A failure is
    a poison attempt only when the database is healthy (not a connection-type error and a fresh ``SELECT 1``
    answers); otherwise ``DatabaseUnavailable`` is raised and the caller waits and tries again without
    counting. An invalid envelope, or the ``max_attempts``-th failure, adds one dead letter (not two when the
    same event comes back after its dead letter was committed but before its message was terminated).
    """
    try:
        event = CloudEvent.model_validate_json(payload)
    except ValueError as exc:  # no retry can fix it
        await _add_dead_letter(session, None, subject, payload, f"invalid envelope: {exc}", attempt)
        return Outcome.DEAD_LETTERED
    try:
        # The producer's trace continues here: this line and the handler's carry its trace id.
        with continue_trace(event.traceparent, "apply event", event_type=event.type, event_id=event.id):
            async with session.begin_nested():
                applied = await applier.apply(session, event)
            log.info("event applied" if applied else "event skipped (already applied or parked)",
                     extra={"event_id": event.id, "event_type": event.type, "consumer": applier.service})
        return Outcome.SETTLED
    except Exception as exc:
        if is_connection_error(exc) or not await database_answers(session.bind):
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
        log.warning("event %s (%s) failed, attempt %d of %d: %s", event.id, event.type, attempt, max_attempts, exc)
        if attempt < max_attempts:
            return Outcome.RETRY
        await _add_dead_letter(session, event.id, subject, payload, f"{type(exc).__name__}: {exc}", attempt)
        return Outcome.DEAD_LETTERED


async def _add_dead_letter(session: AsyncSession, event_id: str | None, subject: str, payload: bytes, error: str,
                           attempts: int) -> None:
    """One dead letter per event (per payload, for an envelope without a readable id)."""
    text = payload.decode(errors="replace")
    same = DeadLetter.event_id == event_id if event_id else DeadLetter.payload == text  # type: ignore[arg-type]
    if (await session.execute(select(DeadLetter.id).where(same).limit(1))).first() is None:
        session.add(DeadLetter(event_id=event_id, subject=subject, payload=text, error=error[:2000],
                               deliveries=attempts))


class EventConsumer(BackgroundWorker):
    def __init__(
        self, settings: CommonSettings, sessionmaker: async_sessionmaker[AsyncSession], bus: Bus,
        applier: EventApplier, *, durable: str, filter_subject: str | None = None,
        max_attempts: int = 5, batch_size: int = 100, ack_wait: float = 30.0, parked_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.name = f"consumer-{durable}"
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.bus = bus
        self.applier = applier
        self.durable = durable
        self.filter_subject = filter_subject or f"{settings.subject_prefix}.>"
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.ack_wait = ack_wait
        self.parked_interval = parked_interval

    async def run(self) -> None:
        retrying = retry_forever(self.name)
        while True:
            await retrying(self._consume_until_reconnect)

    def consumer_config(self) -> ConsumerConfig:
        # max_deliver=-1: JetStream never gives up on a message; this consumer acks or terminates each one.
        return ConsumerConfig(durable_name=self.durable, name=self.durable, filter_subject=self.filter_subject,
                              ack_policy=AckPolicy.EXPLICIT, max_deliver=-1, ack_wait=self.ack_wait,
                              deliver_policy=DeliverPolicy.ALL, max_ack_pending=10_000)

    async def _consume_until_reconnect(self) -> None:
        js = await self.bus.wait_ready()
        generation = self.bus.generation
        # add_consumer creates the durable or updates it in place (an older one kept max_deliver=5).
        await js.add_consumer(self.settings.nats_stream, self.consumer_config())
        sub = await js.pull_subscribe_bind(durable=self.durable, stream=self.settings.nats_stream)
        loop = asyncio.get_running_loop()
        try:
            await self.apply_parked()
            parked_due = loop.time() + self.parked_interval
            # After a reconnect the pull subscription is made again (nats.py issue 504).
            while self.bus.generation == generation:
                if loop.time() >= parked_due:
                    await self.apply_parked()
                    parked_due = loop.time() + self.parked_interval
                try:
                    msgs = await self._fetch(sub)
                except (NatsTimeoutError, TimeoutError):
                    continue
                await self._handle_batch(msgs)
        finally:
            await sub.unsubscribe()

    async def refresh_lag(self, timeout: float = 2.0) -> None:
        """Set the lag gauges from JetStream (the stream's last sequence, the durable's acknowledged floor);
        while NATS cannot answer they are removed rather than left stale."""
        labels = (self.settings.service_name, self.durable)
        try:
            if not self.bus.connected or self.bus.js is None:
                raise ConnectionError("not connected to NATS")
            js = self.bus.js
            stream = await asyncio.wait_for(js.stream_info(self.settings.nats_stream), timeout)
            consumer = await asyncio.wait_for(js.consumer_info(self.settings.nats_stream, self.durable), timeout)
        except Exception as exc:
            log.debug("consumer lag unknown: %s", exc)
            for gauge in (STREAM_SEQUENCE, APPLIED_SEQUENCE, LAG):
                try:
                    gauge.remove(*labels)
                except KeyError:
                    pass
            return
        last = stream.state.last_seq
        applied = consumer.ack_floor.stream_seq if consumer.ack_floor is not None else 0
        STREAM_SEQUENCE.labels(*labels).set(last)
        APPLIED_SEQUENCE.labels(*labels).set(applied)
        LAG.labels(*labels).set(max(0, last - applied))
    async def _fetch(self, sub: Any) -> list[Any]:
        """The next message as soon as it is stored, then as many of those waiting behind it as a batch holds.

        One ``fetch(batch_size)`` would do on a backlog, but on an idle stream nats.py's lingering pull returns
        only when the batch is full or the timeout ends, so an event arriving then waited up to a second. A pull
        for one message returns on its arrival; the message's ``num_pending`` says whether more are waiting,
        which a second pull takes at once (they are there: it does not linger)."""
        msgs = list(await sub.fetch(1, timeout=1))
        waiting = msgs[-1].metadata.num_pending
        if waiting and self.batch_size > 1:
            try:
                msgs += await sub.fetch(min(self.batch_size - 1, waiting), timeout=1)
            except (NatsTimeoutError, TimeoutError):
                pass  # taken meanwhile by another replica: handle what we have
        return msgs

    async def _handle_batch(self, msgs: list[object]) -> None:
        unsettled = list(msgs)
        holding = asyncio.create_task(self._hold(unsettled), name=f"{self.name}-hold")
        try:
            if len(msgs) > 1 and await self._apply_together(msgs):
                for msg in msgs:
                    await msg.ack()  # type: ignore[attr-defined]
                    unsettled.remove(msg)
                return
            for msg in msgs:
                await self._handle(msg)
                unsettled.remove(msg)
        finally:
            holding.cancel()

    async def _apply_together(self, msgs: list[object]) -> bool:
        """A backlog's messages in one transaction (one commit instead of one per event). Any failure, a poison
        or the database, rolls all of it back and returns False: the messages then go one by one through the
        full policy (attempts, dead letters, waiting for the database), where applied ones are duplicates."""
        try:
            async with self.sessionmaker() as session, session.begin():
                for msg in msgs:
                    await self.applier.apply(session, CloudEvent.model_validate_json(msg.data))  # type: ignore[attr-defined]
            return True
        except Exception as exc:
            log.info("%s: a batch of %d failed together (%s: %s); one by one", self.name, len(msgs),
                     type(exc).__name__, exc)
            return False

    async def _hold(self, msgs: list[object]) -> None:
        """Keep telling JetStream that the batch's unsettled messages are being worked on, so it does not
        redeliver them while the consumer waits for the database or between attempts at a poison."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            for msg in list(msgs):
                try:
                    await msg.in_progress()  # type: ignore[attr-defined]
                except Exception as exc:  # NATS down: the message will be redelivered, and be a duplicate
                    log.debug("in_progress failed: %s", exc)

    async def _handle(self, msg: object) -> None:
        outcome = await self.settle(msg.subject, msg.data)  # type: ignore[attr-defined]
        if outcome is Outcome.DEAD_LETTERED:
            DEAD.labels(self.settings.service_name).inc()
            await msg.term()  # type: ignore[attr-defined]
        else:
            await msg.ack()  # type: ignore[attr-defined]

    async def settle(self, subject: str, payload: bytes, *, parked_id: str | None = None) -> Outcome:
        """Apply one message until it is applied (or parked) or its dead letter is committed.

        Attempts on a healthy database are counted here; while the database is unreachable the same
        attempt is tried again with the shared backoff, for as long as it takes. A parked event's row is
        deleted in the transaction that settles it.
        """
        retrying = retry_forever(f"{self.name}: database unavailable", retry_on=DatabaseUnavailable)
        attempt = 1
        while True:
            outcome = await retrying(self._attempt, subject, payload, attempt, parked_id)
            if outcome is not Outcome.RETRY:
                return outcome
            await asyncio.sleep(backoff_seconds(attempt))
            attempt += 1

    async def _attempt(self, subject: str, payload: bytes, attempt: int, parked_id: str | None) -> Outcome:
        try:
            async with self.sessionmaker() as session, session.begin():
                outcome = await apply_or_dead_letter(session, self.applier, subject=subject, payload=payload,
                                                     attempt=attempt, max_attempts=self.max_attempts)
                if parked_id is not None and outcome is not Outcome.RETRY:
                    await session.execute(delete(ParkedEvent).where(ParkedEvent.event_id == parked_id))  # type: ignore[arg-type]
            return outcome
        except DatabaseUnavailable:
            UNAVAILABLE.labels(self.settings.service_name).inc()
            raise
        except Exception as exc:  # the commit itself, or the rollback after a lost connection
            if is_connection_error(exc) or not await self._database_answers():
                UNAVAILABLE.labels(self.settings.service_name).inc()
                raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
            raise

    async def _database_answers(self) -> bool:
        async with self.sessionmaker() as session:
            return await database_answers(session.bind)

    async def apply_parked(self) -> int:
        """Apply every parked event whose type now has a handler (exactly once each); returns how many."""
        async def ready() -> list[ParkedEvent]:
            async with self.sessionmaker() as session:
                return await self.applier.parked_to_apply(session)

        parked = await retry_forever(f"{self.name}: reading parked events")(ready)
        for row in parked:
            outcome = await self.settle(f"parked:{row.event_type}", row.payload.encode(), parked_id=row.event_id)
            if outcome is Outcome.DEAD_LETTERED:
                DEAD.labels(self.settings.service_name).inc()
        if parked:
            log.info("applied %d parked events now that their types have handlers", len(parked))
        return len(parked)


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
