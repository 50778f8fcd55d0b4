"""Rebuild a consumer's projection from the stream: build it aside, then swap it in, in one transaction.

1. Aside: the same tables in another namespace (PostgreSQL: the schema ``<schema>_rebuild``; SQLite:
   the file ``<db>.rebuild``), made by the service's own migrations, so its columns are the live ones.
   It is dropped at the start and at the end, also on failure.
2. Read: an ephemeral pull consumer (no acks) reads the stream in order, by stream sequence, up to the
   last sequence seen at the start, committing the aside batch by batch. No progress within
   ``stall_seconds`` (NATS stalled, stopped or unreachable) is an error: nothing is swapped.
3. Each event goes through the live consumer's dead-letter policy with one attempt
   (``shared.consumer.apply_or_dead_letter``; a healthy batch is applied in one savepoint by
   :func:`apply_messages`). A consumer that gives a :class:`Replay` has the whole stream folded in memory
   under the same policy instead (no database work per event), then written aside in bulk; whatever the
   replay cannot take (a type it has no fold for, rows the database refuses) makes the rebuild start again
   through the live handlers.
4. Swap, in one transaction that holds the live consumer off (:func:`_hold_off_live_consumer`):
   catch up to the stream's end as seen now, check that the stream still covers what the live
   projection has seen (else refuse, unless ``allow_empty``), then replace every live table's rows
   with the aside's. The live consumer then finds what it has not acked yet in ``processed_events``
   (skipped) or applies it on top (newer).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import MetaData, Table, delete, event, exists, func, insert, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.bus import Bus
from shared.consumer import (
    DatabaseUnavailable,
    DeadLetter,
    EventApplier,
    ParkedEvent,
    ProcessedEvent,
    apply_or_dead_letter,
)
from shared.consumer import Outcome as ConsumerOutcome
from shared.db import create_engine, create_sessionmaker, database_answers, is_connection_error, utcnow
from shared.events import CloudEvent
from shared.settings import CommonSettings

log = logging.getLogger("crp.rebuild")

SQLITE_ASIDE = "rebuild_aside"  # the aside file's name once ATTACHed to the live database


class RebuildError(Exception):
    """The rebuild did not replace the live projection. ``exit_code`` is the CLI's."""

    exit_code = 1


class RebuildRefused(RebuildError):
    """The stream is empty or was recreated while the live projection is not: replacing it would lose data."""

    exit_code = 3


class RebuildIncomplete(RebuildError):
    """NATS or the database stalled or failed before the rebuild reached its target."""

    exit_code = 4


class RebuildBusy(RebuildError):
    """Another rebuild of the same projection is running (they would share the aside)."""

    exit_code = 5


Phase = Literal["reading", "catching-up", "swapping", "done"]
Migrate = Callable[[AsyncEngine, CommonSettings], Awaitable[None]]  # the service's own migrations (Service.migrate)


@dataclass
class RebuildStats:
    """Where a rebuild is: given to the progress callback after every batch, and returned at the end."""

    phase: Phase = "reading"
    first: int = 0  # the stream's first and last sequence when the rebuild started
    last: int = 0
    target: int = 0  # the sequence being read to (``last``, then the end seen while catching up)
    reached: int = 0  # the stream sequence applied so far
    read: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    caught_up: int = 0  # messages read after ``last``
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def percent(self) -> float:
        return 100.0 if self.target <= 0 else min(100.0, 100.0 * self.reached / self.target)

    @property
    def rate(self) -> float:
        """Messages read per second."""
        return self.read / self.seconds if self.seconds > 0 else 0.0


Outcome = Literal["applied", "duplicate", "dead"]


async def apply_messages(session: AsyncSession, applier: EventApplier, msgs: Sequence[Any]) -> list[Outcome]:
    """Apply a batch of stream messages: all in one savepoint, and when any fails, again one by one under
    the live consumer's dead-letter policy with a single attempt (``shared.consumer.apply_or_dead_letter``:
    a poison becomes a dead letter in the aside and the rebuild goes on; an unreachable database raises
    ``DatabaseUnavailable`` and aborts it). A healthy batch costs no savepoint per event."""
    try:
        async with session.begin_nested():
            return ["applied" if await applier.apply(session, CloudEvent.model_validate_json(msg.data))
                    else "duplicate" for msg in msgs]
    except Exception as exc:
        if is_connection_error(exc) or not await database_answers(session.bind):
            raise DatabaseUnavailable(f"{type(exc).__name__}") from exc
    outcomes: list[Outcome] = []
    for msg in msgs:
        outcome = await apply_or_dead_letter(session, applier, subject=msg.subject, payload=msg.data, attempt=1,
                                             max_attempts=1)
        outcomes.append("dead" if outcome is ConsumerOutcome.DEAD_LETTERED else "applied")
    return outcomes


def _in_sequence(msgs: Sequence[Any], delivered: int) -> list[Any]:
    """The leading messages whose consumer sequence follows ``delivered`` without a gap. Deliveries come in
    increasing consumer sequence, so a batch whose last message is ``delivered + len(msgs)`` has none (``metadata``
    is parsed from the reply subject at every access: not for every message)."""
    if msgs and msgs[-1].metadata.sequence.consumer == delivered + len(msgs):
        return list(msgs)
    received: list[Any] = []
    for msg in msgs:
        if msg.metadata.sequence.consumer != delivered + len(received) + 1:
            break
        received.append(msg)
    return received


def _within(msgs: list[Any], position: int, last: int) -> list[Any]:
    """The messages with stream sequences ``position``..``last`` (increasing in a batch)."""
    if msgs and position <= msgs[0].metadata.sequence.stream and msgs[-1].metadata.sequence.stream <= last:
        return msgs
    return [m for m in msgs if position <= m.metadata.sequence.stream <= last]


class ReplayUnsupported(Exception):
    """The in-memory replay cannot give what the live handlers would: the rebuild uses them instead."""


class Replay:
    """A replay of the whole stream folded in memory, then written aside in bulk, under the live consumer's
    policy (``EventApplier.apply`` and ``apply_or_dead_letter`` with one attempt): an invalid envelope or a
    failing fold is a dead letter (one per event), an event seen already is a duplicate, a type with no live
    handler is parked.

    A subclass gives ``folds`` (event type -> function of the event changing the in-memory state; it must
    raise before changing anything, as the live savepoint leaves no trace of a failed event) and
    :meth:`projection_rows`. The result must equal the live handlers' (``tests/indicators/test_fast_rebuild.py``).
    """

    folds: dict[str, Callable[[CloudEvent], None]] = {}
    chunk = 2000  # rows per bulk INSERT

    def __init__(self, handled: Iterable[str]) -> None:
        self.handled = frozenset(handled)  # the types the live consumer handles
        self.processed: dict[str, str] = {}  # event id -> type
        self.parked: dict[str, dict[str, Any]] = {}
        self.dead: dict[Any, dict[str, Any]] = {}  # one per event id (per payload without one)

    def fold(self, subject: str, payload: bytes) -> Outcome:
        try:
            event = CloudEvent.model_validate_json(payload)
        except ValueError as exc:
            return self._dead_letter(None, subject, payload, f"invalid envelope: {exc}")
        if event.id in self.processed:
            return "duplicate"
        if event.type not in self.handled:
            if event.id not in self.parked:
                self.parked[event.id] = dict(event_id=event.id, event_type=event.type, subject=event.subject,
                                             payload=event.model_dump_json(), time=event.time, parked_at=utcnow())
            return "duplicate"
        fold = self.folds.get(event.type)
        if fold is None:
            raise ReplayUnsupported(f"no fold for {event.type}")
        try:
            fold(event)
        except ReplayUnsupported:
            raise
        except Exception as exc:
            return self._dead_letter(event.id, subject, payload, f"{type(exc).__name__}: {exc}")
        self.processed[event.id] = event.type
        return "applied"

    def _dead_letter(self, event_id: str | None, subject: str, payload: bytes, error: str) -> Outcome:
        text_ = payload.decode(errors="replace")
        key = ("id", event_id) if event_id else ("payload", text_)
        if key not in self.dead:
            self.dead[key] = dict(event_id=event_id, subject=subject, payload=text_, error=error[:2000],
                                  deliveries=1, created_at=utcnow())
        return "dead"

    def projection_rows(self) -> Iterable[tuple[type[SQLModel], list[dict[str, Any]]]]:
        """Every projection table's rows, as complete dicts of column values."""
        raise NotImplementedError

    async def write(self, conn: AsyncConnection) -> None:
        """Insert every row in bulk (executemany), in the caller's transaction on the aside."""
        now = utcnow()
        consumer_rows: list[tuple[type[SQLModel], list[dict[str, Any]]]] = [
            (ProcessedEvent, [dict(event_id=i, event_type=t, processed_at=now) for i, t in self.processed.items()]),
            (ParkedEvent, list(self.parked.values())),
            (DeadLetter, list(self.dead.values())),
        ]
        for model, rows in (*self.projection_rows(), *consumer_rows):
            if rows:
                await _bulk_insert(conn, model.__table__, rows, self.chunk)  # type: ignore[attr-defined]


async def _bulk_insert(conn: AsyncConnection, table: Table, rows: list[dict[str, Any]], chunk: int) -> None:
    """Rows (dicts with the same keys) into ``table``, named as the connection resolves it (the aside): PostgreSQL
    COPY (asyncpg encodes the Python values), SQLite one prepared INSERT run over the rows with each column's own
    bind processing (what ``conn.execute(insert(table), rows)`` does, without its per-row work)."""
    columns = [column for column in table.columns if column.name in rows[0]]
    names = [column.name for column in columns]
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT 1"))  # the transaction begins: COPY runs in it
        driver = (await conn.get_raw_connection()).driver_connection
        for start in range(0, len(rows), chunk * 10):
            await driver.copy_records_to_table(table.name, columns=names, records=[
                tuple(row[name] for name in names) for row in rows[start:start + chunk * 10]])
        return
    processors = [(i, process) for i, column in enumerate(columns)
                  if (process := conn.dialect.type_descriptor(column.type).bind_processor(conn.dialect)) is not None]
    quoted = ", ".join(f'"{name}"' for name in names)
    marks = ", ".join("?" for _ in names)
    sql = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})'

    def bound(row: dict[str, Any]) -> list[Any]:
        values = [row[name] for name in names]
        for i, process in processors:
            values[i] = process(values[i])
        return values

    for start in range(0, len(rows), chunk):
        await conn.exec_driver_sql(sql, [tuple(bound(row)) for row in rows[start:start + chunk]])


# -- reading the stream --------------------------------------------------------------------------
class StreamReader:
    """Reads stream sequences in order with an ephemeral pull consumer; a stall past ``stall_seconds`` raises."""

    def __init__(self, bus: Bus, settings: CommonSettings, *, stall_seconds: float, batch_size: int) -> None:
        self.bus = bus
        self.settings = settings
        self.stall_seconds = stall_seconds
        self.batch_size = batch_size
        self.fetch_timeout = max(0.2, min(1.0, stall_seconds / 3))

    async def bounds(self) -> tuple[int, int, int]:
        """The stream's (first sequence, last sequence, messages) now."""
        try:
            js = await self.bus.wait_ready(timeout=self.stall_seconds)
            info = await asyncio.wait_for(js.stream_info(self.settings.nats_stream), self.stall_seconds)
        except Exception as exc:
            raise RebuildIncomplete(f"NATS did not answer within {self.stall_seconds:g}s at "
                                    f"{self.settings.nats_url}: {type(exc).__name__} {exc}".rstrip()) from exc
        state = info.state
        return state.first_seq, state.last_seq, state.messages

    async def _subscribe(self, start: int) -> Any:
        js = await self.bus.wait_ready(timeout=self.fetch_timeout)
        assert self.bus.nc is not None
        return await _Pull.create(js, self.bus.nc, self.settings.nats_stream, ConsumerConfig(
            filter_subject=f"{self.settings.subject_prefix}.>", ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start, inactive_threshold=60,
            mem_storage=True))

    async def _drop(self, sub: Any) -> None:
        if sub is None:
            return
        with contextlib.suppress(Exception):  # best effort: an idle ephemeral consumer expires by itself
            await asyncio.wait_for(sub.unsubscribe(), 1)
            js = self.bus.js
            if js is not None:
                await asyncio.wait_for(js.delete_consumer(self.settings.nats_stream, sub._consumer), 1)

    async def read(self, start: int, last: int, handle: Callable[[list[Any]], Awaitable[None]]) -> int:
        """Hand the messages with sequences ``start``..``last`` to ``handle`` in order, in batches.

        Sequences may have gaps (deleted messages): the end is reached at ``last`` or when nothing is
        left before it. Returns the last sequence covered.
        """
        position, sub, delivered = start, None, 0
        progress_at = time.monotonic()
        try:
            while position <= last:
                try:
                    if sub is None:
                        sub, delivered = await self._subscribe(position), 0
                    msgs = await sub.fetch(min(self.batch_size, last - position + 1), timeout=self.fetch_timeout)
                except Exception as exc:  # a timeout, NATS stopped or restarting, the consumer gone
                    if time.monotonic() - progress_at > self.stall_seconds:
                        raise RebuildIncomplete(
                            f"the stream stalled: nothing received for {self.stall_seconds:g}s at sequence "
                            f"{position} of {last} ({type(exc).__name__}); nothing was replaced") from exc
                    if isinstance(exc, NatsTimeoutError | TimeoutError) and sub is not None:
                        if await self._nothing_pending(sub):
                            break  # the rest up to `last` was deleted from the stream
                    else:
                        await self._drop(sub)
                        sub = None
                        await asyncio.sleep(min(0.5, self.fetch_timeout))
                    continue
                if not msgs:
                    continue
                progress_at = time.monotonic()
                # No acks, so no redelivery: a delivery lost on the way (e.g. in a reconnect) shows as a gap
                # in the consumer's sequence, and the reading starts again from the position reached.
                received = _in_sequence(msgs, delivered)
                delivered += len(received)
                wanted = _within(received, position, last)
                if wanted:
                    await handle(wanted)
                    progress_at = time.monotonic()  # a slow batch is not NATS stalling
                if received:
                    position = max(position, received[-1].metadata.sequence.stream + 1)
                if len(received) < len(msgs):
                    log.warning("rebuild: deliveries lost before stream sequence %d; reading again from there",
                                position)
                    await self._drop(sub)
                    sub = None
                elif received[-1].metadata.num_pending == 0:
                    break  # nothing after this message: the rest up to `last` was deleted
        finally:
            await self._drop(sub)
        return last

    async def _nothing_pending(self, sub: Any) -> bool:
        try:
            info = await asyncio.wait_for(sub.consumer_info(), self.fetch_timeout)
        except Exception:
            return False
        return info.num_pending == 0


class _Pull:
    """An ephemeral pull consumer read by plain pull requests whose messages a subscription's callback collects:
    nats.py's ``fetch`` waits for every message with a timeout task of its own, which cost half of a rebuild's
    time; here a batch is awaited once. ``fetch`` raises ``nats.errors.TimeoutError`` when nothing came (none
    available now, or no answer within ``timeout``) and an error on any other status (e.g. 503: the consumer is
    gone after a NATS restart), so the reader subscribes again."""

    def __init__(self, js: Any, nc: Any, stream: str, name: str) -> None:
        self.js, self.nc, self.stream, self._consumer = js, nc, stream, name
        self.sub: Any = None
        self._msgs: list[Any] = []
        self._want = 0
        self._done = asyncio.Event()
        self._error: Exception | None = None

    @classmethod
    async def create(cls, js: Any, nc: Any, stream: str, config: ConsumerConfig) -> _Pull:
        info = await js.add_consumer(stream, config)
        pull = cls(js, nc, stream, info.name)
        pull.sub = await nc.subscribe(nc.new_inbox(), cb=pull._received)
        return pull

    async def _received(self, msg: Any) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self._msgs.append(msg)
            if len(self._msgs) >= self._want:
                self._done.set()
        elif status != "100":  # not a heartbeat: the request ended (404 none now, 408 expired) or failed
            if status not in ("404", "408"):
                self._error = NatsError(f"pull request answered {status} {msg.headers.get('Description', '')}")
            self._done.set()

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        # Messages that came after the previous fetch returned are kept: they are the next ones in order.
        self._want, self._error = batch, None
        self._done.clear()
        if len(self._msgs) >= batch:
            self._done.set()
        await self.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self._consumer}",
                              json.dumps({"batch": batch, "no_wait": True}).encode(), reply=self.sub.subject)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._done.wait(), timeout)
        msgs, self._msgs, self._want = self._msgs, [], 0
        if not msgs:
            if self._error is not None:
                raise self._error
            raise NatsTimeoutError
        return msgs

    async def consumer_info(self) -> Any:
        return await self.js.consumer_info(self.stream, self._consumer)

    async def unsubscribe(self) -> None:
        await self.sub.unsubscribe()


# -- the aside namespace -------------------------------------------------------------------------
@dataclass
class Aside:
    settings: CommonSettings  # settings whose database is the aside (for its own engine and migrations)
    schema: str  # how the live connection names it: a PostgreSQL schema, or the ATTACH name on SQLite
    live_schema: str
    path: Path | None = None  # the SQLite file


def aside_for(settings: CommonSettings) -> Aside:
    if settings.is_sqlite:
        url = settings.async_database_url
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path.startswith(":memory:"):
            raise RebuildError("an in-memory SQLite database cannot be rebuilt aside")
        aside = Path(f"{path}.rebuild")
        return Aside(settings.model_copy(update={"database_url": f"sqlite:///{aside}"}), SQLITE_ASIDE, "main",
                     aside)
    assert settings.schema is not None
    schema = f"{settings.schema}_rebuild"
    return Aside(settings.model_copy(update={"database_schema": schema}), schema, settings.schema)


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def drop_aside(live: AsyncEngine, aside: Aside) -> None:
    if aside.path is not None:
        _remove_sqlite_files(aside.path)
        return
    async with live.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{aside.schema}" CASCADE'))


@contextlib.asynccontextmanager
async def rebuild_lock(settings: CommonSettings) -> AsyncIterator[None]:
    """Held for a whole rebuild: a second one at the same time raises :class:`RebuildBusy`.

    PostgreSQL: a session advisory lock (released if the process dies); SQLite: ``flock`` on a file
    beside the database.
    """
    aside = aside_for(settings)
    busy = RebuildBusy(f"another rebuild of {aside.live_schema if aside.path is None else settings.async_database_url} "
                       "is running; nothing was done")
    if aside.path is not None:
        import fcntl

        os.makedirs(os.path.dirname(aside.path) or ".", exist_ok=True)
        fd = os.open(f"{aside.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise busy from None
            yield
        finally:
            os.close(fd)  # releases the lock
        return
    engine = create_engine(settings)
    key = {"k": f"crp-rebuild-{aside.live_schema}"}
    try:
        async with engine.connect() as conn:
            if not (await conn.execute(text("SELECT pg_try_advisory_lock(hashtext(:k))"), key)).scalar_one():
                raise busy
            await conn.commit()  # the lock belongs to the session, not to this transaction
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a lost connection has released it already
                    await conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), key)
                    await conn.commit()
    finally:
        await engine.dispose()


def _in(model: type[SQLModel], schema: str) -> Table:
    """The model's table, named in ``schema``."""
    return model.__table__.to_metadata(MetaData(), schema=schema)  # type: ignore[attr-defined,no-any-return]


async def _live_counts(conn: AsyncConnection, aside: Aside, tables: Sequence[type[SQLModel]]) -> tuple[int, int]:
    """(events the live projection has applied, rows in its other tables)."""
    counts = {model: (await conn.execute(select(func.count()).select_from(_in(model, aside.live_schema)))).scalar_one()
              for model in tables}
    applied = counts.pop(ProcessedEvent)
    return applied, sum(counts.values())


# -- the whole rebuild ---------------------------------------------------------------------------
async def rebuild_projection(
    *, settings: CommonSettings, bus: Bus, applier: EventApplier, tables: Sequence[type[SQLModel]],
    migrate: Migrate, allow_empty: bool = False, stall_seconds: float = 30.0, batch_size: int = 200,
    progress: Callable[[RebuildStats], object] | None = None, replay: Callable[[], Replay] | None = None,
) -> RebuildStats:
    """Replay the whole stream into ``tables`` aside and swap them in; see the module docstring.

    ``replay`` makes the :class:`Replay` that builds the aside in memory (without, the live handlers do).

    ``tables`` must hold ``processed_events`` and ``dead_letters``. Raises :class:`RebuildError`
    (refused, or incomplete) with the live projection untouched.
    """
    if ProcessedEvent not in tables or DeadLetter not in tables:
        raise ValueError("a rebuild replaces processed_events and dead_letters with the projection")
    stats = RebuildStats()

    async def report(stats: RebuildStats) -> None:
        if progress is not None and inspect.isawaitable(shown := progress(stats)):
            await shown

    reader = StreamReader(bus, settings, stall_seconds=stall_seconds, batch_size=batch_size)
    aside = aside_for(settings)
    try:
        async with rebuild_lock(settings):
            return await _rebuild(settings, applier, tables, migrate, allow_empty, reader, aside, stats, report,
                                  batch_size, replay)
    except (RebuildError, ValueError):
        raise
    except Exception as exc:
        if not (isinstance(exc, DatabaseUnavailable) or is_connection_error(exc)):
            raise
        raise RebuildIncomplete(
            f"the database or NATS failed ({type(exc).__name__}: {exc}); nothing was replaced") from exc


async def _rebuild(settings: CommonSettings, applier: EventApplier, tables: Sequence[type[SQLModel]],
                   migrate: Migrate, allow_empty: bool, reader: StreamReader, aside: Aside, stats: RebuildStats,
                   report: Callable[[RebuildStats], Awaitable[None]], batch_size: int,
                   replay: Callable[[], Replay] | None) -> RebuildStats:
    live = create_engine(settings)
    try:
        await migrate(live, settings)
        await drop_aside(live, aside)
        stats.first, stats.last, messages = await reader.bounds()
        stats.target = stats.last
        if messages == 0 and not allow_empty:
            async with live.connect() as conn:
                applied, rows = await _live_counts(conn, aside, tables)
            if applied or rows:
                raise RebuildRefused(
                    f"the stream {settings.nats_stream} is empty but the live projection has applied {applied} "
                    f"events ({rows} rows): nothing was replaced; run with --allow-empty to empty it")
        await report(stats)
        try:
            await _build(reader, aside, applier, migrate, stats, report, batch_size, replay)
        except ReplayUnsupported as exc:
            log.warning("rebuild: the in-memory replay stopped (%s); again through the live handlers", exc)
            await drop_aside(live, aside)
            stats.read = stats.applied = stats.duplicates = stats.dead_letters = stats.caught_up = stats.reached = 0
            stats.phase, stats.target = "reading", stats.last
            await _build(reader, aside, applier, migrate, stats, report, batch_size, None)
        await _swap(settings, live, reader, aside, applier, tables, stats, report, allow_empty)
    finally:
        try:
            await drop_aside(live, aside)
        except Exception as exc:  # the database went away: the next rebuild drops it first
            log.warning("rebuild: could not drop the aside %s: %s", aside.schema, exc)
        await live.dispose()
    stats.phase, stats.finished = "done", time.monotonic()
    await report(stats)
    return stats


def _count(stats: RebuildStats, outcome: Outcome) -> None:
    stats.read += 1
    if outcome == "applied":
        stats.applied += 1
    elif outcome == "duplicate":
        stats.duplicates += 1
    else:
        stats.dead_letters += 1


async def _build(reader: StreamReader, aside: Aside, applier: EventApplier, migrate: Migrate,
                 stats: RebuildStats, report: Callable[[RebuildStats], Awaitable[None]], batch_size: int,
                 make_replay: Callable[[], Replay] | None) -> None:
    """Read up to the last sequence seen at the start into the aside: batch by batch through the live handlers,
    committing each, or folded in memory by a :class:`Replay` and written in one transaction at the end."""
    engine = create_engine(aside.settings)
    replay = make_replay() if make_replay is not None else None
    try:
        await migrate(engine, aside.settings)
        sessionmaker = create_sessionmaker(engine)

        async def handle(msgs: list[Any]) -> None:
            if replay is not None:
                for msg in msgs:
                    _count(stats, replay.fold(msg.subject, msg.data))
            else:
                async with sessionmaker() as session, session.begin():
                    for outcome in await apply_messages(session, applier, msgs):
                        _count(stats, outcome)
            if stats.phase == "catching-up":
                stats.caught_up += len(msgs)
            stats.reached = msgs[-1].metadata.sequence.stream
            await report(stats)

        stats.reached = await reader.read(1, stats.last, handle)
        # Catch up without holding the live consumer off while much has arrived meanwhile.
        for _ in range(3):
            _, end, _ = await reader.bounds()
            if end - stats.reached <= batch_size:
                break
            stats.phase, stats.target = "catching-up", end
            await report(stats)
            stats.reached = await reader.read(stats.reached + 1, end, handle)
        if replay is not None:
            try:
                async with engine.begin() as conn:
                    await replay.write(conn)
            except Exception as exc:
                if is_connection_error(exc) or not await database_answers(engine):
                    raise DatabaseUnavailable(f"{type(exc).__name__}") from exc
                raise ReplayUnsupported(f"the aside refused the replay's rows: {type(exc).__name__}") from exc
    finally:
        await engine.dispose()


def _attaching(settings: CommonSettings, aside: Aside) -> AsyncEngine:
    """A SQLite engine on the live database with the aside file attached to every connection."""
    engine = create_engine(settings)

    @event.listens_for(engine.sync_engine, "connect")
    def _attach(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"ATTACH DATABASE ? AS {SQLITE_ASIDE}", (str(aside.path),))
        cur.close()

    return engine


LOCKED_STALL_SECONDS = 5.0
_LOCK_BUSY = {"55P03", "40P01"}  # lock_not_available, deadlock_detected


async def _hold_off_live_consumer(conn: AsyncConnection, aside: Aside, patience: float) -> None:
    """Begin the swap's transaction so that no live consumer transaction runs until it ends.

    SQLite: BEGIN IMMEDIATE takes the write lock, and every consumer transaction begins the same way.
    PostgreSQL: ACCESS EXCLUSIVE on processed_events, which every consumer transaction reads first, so
    it waits before reading anything (rather than reading the old projection and writing after the
    swap). Tried with a 1 s lock timeout at a time, so readers queued behind the request wait little,
    for up to ``patience`` seconds.
    """
    deadline = time.monotonic() + patience
    while True:
        await conn.begin()
        if conn.dialect.name != "postgresql":
            return
        try:
            await conn.execute(text("SET LOCAL lock_timeout = '1s'"))
            await conn.execute(text(f'LOCK TABLE "{aside.live_schema}".processed_events IN ACCESS EXCLUSIVE MODE'))
            return
        except sa_exc.DBAPIError as exc:
            await conn.rollback()
            if getattr(exc.orig, "sqlstate", None) not in _LOCK_BUSY:
                raise
            if time.monotonic() > deadline:
                raise RebuildIncomplete(f"processed_events stayed locked by other transactions for {patience:g}s; "
                                        "nothing was replaced") from exc
            await asyncio.sleep(0.2)


async def _swap(settings: CommonSettings, live: AsyncEngine, reader: StreamReader, aside: Aside,
                applier: EventApplier, tables: Sequence[type[SQLModel]], stats: RebuildStats,
                report: Callable[[RebuildStats], Awaitable[None]], allow_empty: bool) -> None:
    engine = _attaching(settings, aside) if aside.path is not None else live
    try:
        async with engine.connect() as conn:
            await _hold_off_live_consumer(conn, aside, reader.stall_seconds)
            # Under the lock a stall blocks the live consumer (and the summary's as_of): be short of patience.
            reader = StreamReader(reader.bus, settings, stall_seconds=min(reader.stall_seconds, LOCKED_STALL_SECONDS),
                                  batch_size=reader.batch_size)
            await conn.execution_options(schema_translate_map={None: aside.schema})
            session = AsyncSession(bind=conn, expire_on_commit=False)

            async def handle(msgs: list[Any]) -> None:
                for outcome in await apply_messages(session, applier, msgs):
                    _count(stats, outcome)
                stats.caught_up += len(msgs)
                stats.reached = msgs[-1].metadata.sequence.stream
                await report(stats)

            _, end, _ = await reader.bounds()
            stats.phase, stats.target = "swapping", max(end, stats.reached)
            await report(stats)
            if end > stats.reached:
                stats.reached = await reader.read(stats.reached + 1, end, handle)
            await session.flush()
            await session.close()
            await _check_coverage(conn, aside, tables, stats, settings, allow_empty)
            for model in tables:
                live_table, aside_table = _in(model, aside.live_schema), _in(model, aside.schema)
                serial = live_table.autoincrement_column  # numbered afresh by the live table
                columns = [c.name for c in live_table.columns if c is not serial]
                await conn.execute(delete(live_table))
                await conn.execute(insert(live_table).from_select(
                    columns, select(*(aside_table.c[name] for name in columns))
                    .order_by(*aside_table.primary_key.columns)))
            await conn.commit()
    finally:
        if engine is not live:
            await engine.dispose()


async def _check_coverage(conn: AsyncConnection, aside: Aside, tables: Sequence[type[SQLModel]],
                          stats: RebuildStats, settings: CommonSettings, allow_empty: bool) -> None:
    """Refuse to replace a projection with one built from an empty or recreated stream."""
    if allow_empty:
        return
    live_events = _in(ProcessedEvent, aside.live_schema)
    # An event the rebuild has seen is in any of its tables that record event ids (applied, dead-lettered, ...).
    seen = [_in(model, aside.schema) for model in tables if "event_id" in model.__table__.c]  # type: ignore[attr-defined]
    missing = (await conn.execute(select(func.count()).select_from(live_events).where(
        *(~exists().where(table.c.event_id == live_events.c.event_id) for table in seen)))).scalar_one()
    applied, rows = await _live_counts(conn, aside, tables)
    if missing:
        raise RebuildRefused(
            f"{missing} of the {applied} events applied to the live projection are not in the stream "
            f"{settings.nats_stream} ({stats.read} messages read up to sequence {stats.reached}): it was "
            "recreated or purged; nothing was replaced; run with --allow-empty to replace it anyway")
    if stats.read == 0 and (applied or rows):
        raise RebuildRefused(
            f"the stream {settings.nats_stream} is empty but the live projection has applied {applied} events "
            f"({rows} rows): nothing was replaced; run with --allow-empty to empty it")
