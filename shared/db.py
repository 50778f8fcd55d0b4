"""Database: the async engine (SQLite or PostgreSQL), time helpers, and the transaction-owning session."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request
from pydantic import PlainSerializer
from sqlalchemy import Engine, Select, event, exc, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.orm.session import Session as SyncSession

from shared.settings import CommonSettings


def utcnow() -> datetime:
    """Aware UTC: SQLModel stores datetimes as UTC (timestamptz on PostgreSQL) and returns them aware."""
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    if value.tzinfo is UTC:  # as read from the database: no conversion
        return value.isoformat().replace("+00:00", "Z")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _not_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


# At DEBUG, aiosqlite logs every operation with its parameters and SQLAlchemy every row it fetches:
# names, dates of birth, phones. Whatever the configured levels, those records are dropped.
for _name in ("aiosqlite", "sqlalchemy.engine.Engine"):
    logging.getLogger(_name).addFilter(_not_debug)


UtcDatetime = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]
"""A datetime rendered as RFC 3339 UTC in responses."""


def create_engine(settings: CommonSettings) -> AsyncEngine:
    """The service's engine. Bound parameters (names, dates of birth, phones...) are hidden from logs and
    from database errors' messages: ``hide_parameters`` on every engine."""
    url = settings.async_database_url
    if settings.is_sqlite:
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        pool = ({"pool_size": settings.database_pool_size, "max_overflow": settings.database_max_overflow}
                if path and path != ":memory:" else {})
        engine = create_async_engine(url, hide_parameters=True, async_creator=_sqlite_creator(path), **pool)
        _sqlite_pragmas(engine)
        return engine
    engine = create_async_engine(
        url, pool_size=settings.database_pool_size, max_overflow=settings.database_max_overflow,
        hide_parameters=True,
        connect_args={"server_settings": {"search_path": settings.schema or "public"}},
    )
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


PING_AFTER_IDLE_SECONDS = 10.0


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Check a pooled PostgreSQL connection before use only when it sat idle (a restart or a network cut may have
    broken it meanwhile). ``pool_pre_ping`` did it on every checkout: one more round trip for every request,
    while a connection in steady use is known to be alive. A dead one is replaced, the request never sees it."""
    import time

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            dbapi_conn.ping()
        except Exception as error:  # the pool discards this connection and checks out another
            raise exc.DisconnectionError("stale pooled connection") from error


SQLITE_LOCK_TIMEOUT = 30.0  # as long as SQLite's busy timeout


def _sqlite_creator(path: str) -> Callable[[], Any]:
    def create() -> Any:
        import functools

        connector = functools.partial(sqlite3.connect, path or ":memory:", timeout=SQLITE_LOCK_TIMEOUT,
                                      isolation_level=None, check_same_thread=False)
        connection = SqliteConnection(connector, iter_chunk_size=64)
        connection._thread.daemon = True
        connection.database = path
        return connection

    return create


_write_locks: dict[tuple[str, int], asyncio.Lock] = {}


def _write_lock(database: str) -> asyncio.Lock:
    """The process's queue of writers of one SQLite file (per event loop)."""
    key = (database, id(asyncio.get_running_loop()))
    lock = _write_locks.get(key)
    if lock is None:
        lock = _write_locks[key] = asyncio.Lock()
    return lock


def _aiosqlite_connection() -> type:
    import aiosqlite

    class Connection(aiosqlite.Connection):
        """aiosqlite without the thread hop where SQLite cannot wait.

        aiosqlite runs every call (cursor, execute, fetch, close, commit) in the connection's thread and wakes
        the event loop with its result: nine hops for a GET, twenty-five for a registration, each costing more
        than the statement. Calls that cannot wait run directly on the event loop:

        - reads of a safe-method request (WAL: a reader never waits for a writer);
        - the statements of a write transaction once it holds SQLite's write lock, and its COMMIT when the
          transaction is small (WAL with synchronous=NORMAL: a commit appends a few pages, no fsync);
        - ``BEGIN IMMEDIATE``, first tried without waiting; only when another process (``crp pii rotate``)
          holds SQLite's lock does it wait, in the thread.

        A hop while holding the write lock made every writer of the process wait for the event loop's turn
        (with 16 clients registering, that wait, not the work, set the pace). The WAL is checkpointed in the
        thread (automatic checkpoints are off on these connections): after every ``CHECKPOINT_EVERY`` commits
        and after a large transaction, whose commit also runs there.

        Writers of this process queue (FIFO) on an ``asyncio.Lock`` before ``BEGIN IMMEDIATE`` instead of
        SQLite's busy-polling with sleeps. The lock is released when the transaction ends.
        """

        database = ""
        _crp_lock: asyncio.Lock | None = None
        _crp_changes = 0  # the connection's total_changes when its write transaction began

        async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
            if self._connection is None:
                return await super()._execute(fn, *args, **kwargs)
            if self._crp_lock is not None:  # inside our write transaction: nothing can wait...
                if not _ends_transaction(fn, args, self._connection):
                    return fn(*args, **kwargs)
                try:
                    if self._ends_directly(fn):
                        return fn(*args, **kwargs)
                    # ...but a large commit, or one that checkpoints the WAL (file I/O, fsync): in the thread
                    return await super()._execute(_then_checkpoint, self._connection, fn, args, kwargs)
                finally:
                    self._end_write()
            if args and isinstance(args[0], str) and args[0].lstrip()[:15].upper() == "BEGIN IMMEDIATE":
                lock = _write_lock(self.database)
                try:
                    await asyncio.wait_for(lock.acquire(), SQLITE_LOCK_TIMEOUT)
                except TimeoutError:
                    raise sqlite3.OperationalError("database is locked") from None
                try:
                    result = _begin_without_waiting(self._connection, fn, args, kwargs)
                    if result is _BUSY:  # another process writes: wait for it in the thread
                        result = await super()._execute(fn, *args, **kwargs)
                except BaseException:
                    lock.release()
                    raise
                self._crp_lock = lock
                self._crp_changes = self._connection.total_changes
                return result
            if _read_only.get():
                return fn(*args, **kwargs)
            return await super()._execute(fn, *args, **kwargs)

        def _ends_directly(self, fn: Any) -> bool:
            """Whether this end of our write transaction runs on the event loop: a rollback, or the commit of a
            small transaction when no checkpoint is due."""
            if getattr(fn, "__name__", "") == "close":
                return False
            if self._connection.total_changes - self._crp_changes > SMALL_TRANSACTION_ROWS:
                return False
            return not _checkpoint_due(self.database)

        def _end_write(self) -> None:
            lock, self._crp_lock = self._crp_lock, None
            if lock is not None:
                lock.release()

        async def close(self) -> None:
            try:
                await super().close()
            finally:
                self._end_write()

    return Connection


SMALL_TRANSACTION_ROWS = 100  # rows a transaction may change and still commit on the event loop
CHECKPOINT_EVERY = 100  # commits between two WAL checkpoints (each in the connection's thread)
_commits: dict[str, int] = {}
_BUSY = object()


def _checkpoint_due(database: str) -> bool:
    """Counts a commit of ``database``; True for every ``CHECKPOINT_EVERY``-th."""
    count = _commits[database] = _commits.get(database, 0) + 1
    return count % CHECKPOINT_EVERY == 0


def _then_checkpoint(connection: Any, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """End the transaction, then checkpoint the WAL as SQLite's automatic checkpoint would (PASSIVE: never waits
    for readers). In the connection's thread."""
    result = fn(*args, **kwargs)
    if getattr(fn, "__name__", "") != "close":
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
    return result


def _begin_without_waiting(connection: Any, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``BEGIN IMMEDIATE`` on the event loop if SQLite's write lock is free now, else ``_BUSY`` (nothing done)."""
    connection.execute("PRAGMA busy_timeout=0").close()
    try:
        return fn(*args, **kwargs)
    except sqlite3.OperationalError as error:
        if "locked" in str(error).lower() or "busy" in str(error).lower():
            return _BUSY
        raise
    finally:
        connection.execute(f"PRAGMA busy_timeout={int(SQLITE_LOCK_TIMEOUT * 1000)}").close()


def _ends_transaction(fn: Any, args: tuple[Any, ...], connection: Any) -> bool:
    name = getattr(fn, "__name__", "")
    if name in ("commit", "rollback", "close") and getattr(fn, "__self__", None) is connection:
        return True
    return bool(args) and isinstance(args[0], str) and args[0].lstrip()[:8].upper() in ("COMMIT", "ROLLBACK", "END")


class _LazySqliteConnection:
    """``SqliteConnection``, built on first use (aiosqlite is imported only where SQLite is used)."""

    _cls: type | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._cls is None:
            self._cls = _aiosqlite_connection()
        return self._cls(*args, **kwargs)


SqliteConnection = _LazySqliteConnection()


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    """WAL, foreign keys, a busy timeout, secure delete, and BEGIN IMMEDIATE.

    A deferred transaction that reads then writes fails at once with "database is locked" when
    another connection writes first; taking the write lock at BEGIN makes writers queue instead.
    Requests with safe methods only read, so they begin deferred and never wait for writers (WAL).
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in the connection's thread (SqliteConnection)
        cur.execute("PRAGMA secure_delete=ON")  # an erased or deleted value is overwritten, not left in a free page
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN" if _read_only.get() else "BEGIN IMMEDIATE")


async def advisory_xact_lock(conn: Any, key: str) -> None:
    """On PostgreSQL, serialise transactions that take the same ``key`` until they end (no-op on SQLite,
    where BEGIN IMMEDIATE already serialises writers)."""
    dialect = conn.dialect if hasattr(conn, "dialect") else conn.bind.dialect  # a connection or a session
    if dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


# What SQLite says when the file, not the statement, is the problem.
SQLITE_UNAVAILABLE = ("locked", "busy", "disk i/o", "unable to open", "readonly", "disk is full", "malformed",
                      "not a database")


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` (or anything in its chain) says the database could not be reached.

    Connection-type errors are infrastructure failures, never a fault of the work being done: a lost or
    refused connection, a timeout, PostgreSQL shutting down or out of connections, SQLAlchemy's
    OperationalError, and on SQLite a locked, busy, unreadable, full or read-only file. SQLite reports a
    faulty statement (no such table or column, a syntax error) as an OperationalError too: that one is a
    fault of the work (a poison, once the database answers), not an outage.
    """
    connection_types = (OSError, TimeoutError, exc.OperationalError, exc.InterfaceError,
                        exc.DisconnectionError, exc.TimeoutError, asyncpg.PostgresConnectionError,
                        asyncpg.InterfaceError, asyncpg.exceptions.OperatorInterventionError,
                        asyncpg.exceptions.InsufficientResourcesError)
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        sqlite_error = getattr(current, "orig", current)
        if isinstance(sqlite_error, sqlite3.OperationalError):
            return any(words in str(sqlite_error).lower() for words in SQLITE_UNAVAILABLE)
        if isinstance(current, connection_types):
            return True
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


async def database_answers(bind: AsyncEngine | AsyncConnection, timeout: float = 5.0) -> bool:
    """A fresh ``SELECT 1`` on its own connection (a read, so on SQLite it never waits for a writer).

    ``bind`` is a session's bind: an engine, or the connection a session was bound to.
    A first attempt that finds its pooled connection broken (the server restarted) is made again once: that
    failure invalidated the pool, so the second attempt opens a new connection, and a database that is back
    is reported as back.
    """
    engine = bind.engine if isinstance(bind, AsyncConnection) else bind
    token = _read_only.set(True)
    try:
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(timeout), engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return True
            except Exception as exc:
                if attempt == 2 or not is_connection_error(exc):
                    return False
        return False
    finally:
        _read_only.reset(token)


class RequestSession(SyncSession):
    """The session of requests and workers. On PostgreSQL, the reads of a safe-method request run in autocommit:
    no BEGIN and COMMIT round trips around a lone SELECT. At READ COMMITTED each statement reads its own
    snapshot anyway, so nothing a reader sees changes; a safe-method request that writes calls ``will_write``
    before its first query and gets a transaction. (SQLite keeps its deferred BEGIN: its reads of one request
    share a snapshot, and the BEGIN is no network round trip.)"""

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        bind = super().get_bind(*args, **kwargs)
        if _read_only.get() and isinstance(bind, Engine) and bind.dialect.name == "postgresql":
            return _autocommit(bind)
        return bind


def _autocommit(engine: Engine) -> Engine:
    reader = engine.__dict__.get("_crp_autocommit")
    if reader is None:  # shares the engine's pool; the isolation level is reset when a connection returns
        reader = engine.__dict__["_crp_autocommit"] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return reader


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, sync_session_class=RequestSession,
                              expire_on_commit=False)


_after_commit_hooks_key = "after_commit"
_read_only: contextvars.ContextVar[bool] = contextvars.ContextVar("crp_read_only", default=False)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def after_commit(session: AsyncSession, hook: Callable[[], None]) -> None:
    """Run ``hook`` once the session dependency has committed (e.g. wake the outbox relay)."""
    session.info.setdefault(_after_commit_hooks_key, []).append(hook)


def run_after_commit_hooks(session: AsyncSession) -> None:
    """Run the ``after_commit`` hooks of a session a background worker has just committed."""
    for hook in session.info.pop(_after_commit_hooks_key, []):
        hook()


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """Transactions begun inside only read: on SQLite they never take (or wait for) the write lock, so a
    background worker's poll does not hold up writers."""
    token = _read_only.set(True)
    try:
        yield
    finally:
        _read_only.reset(token)


async def one_snapshot(session: AsyncSession) -> None:
    """The request's reads all see one snapshot: figures read in several statements then agree with each other
    even while events are being applied (PostgreSQL: a REPEATABLE READ, READ ONLY transaction instead of
    autocommit reads; SQLite: its deferred transaction already reads one snapshot). Call it before the first
    query."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        _read_only.set(False)
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ",
                                                     "postgresql_readonly": True})


def will_write() -> None:
    """This safe-method request writes too (e.g. the audit of a read, a failed PIN): on SQLite its transaction
    then takes the write lock at BEGIN and queues behind other writers instead of failing when it upgrades.
    Call it before the request's first query."""
    _read_only.set(False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session. It owns the transaction: commit on success, roll back on error.

    Services only add and flush, so domain rows and their outbox rows commit together.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    token = _read_only.set(request.method in SAFE_METHODS)
    try:
        # Closed directly rather than by ``async with`` (which closes in a new task under asyncio.shield, a cost
        # on every request): FastAPI already runs a dependency's exit shielded from cancellation.
        session = sessionmaker()
        try:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
            for hook in session.info.pop(_after_commit_hooks_key, []):
                hook()
        finally:
            await session.close()
    finally:  # the request's mode must not outlive it (an in-process caller, a test, shares its context)
        try:
            _read_only.reset(token)
        except ValueError:  # finished in another context than it began
            _read_only.set(False)


# scope="function": the commit happens before the response is sent, so a 2xx means it is stored.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


class Reads:
    """The reads of a safe-method request that needs no session (a lone SELECT by key, a page).

    - SQLite: one connection of the process's own, opened on first use and kept, in autocommit, used directly on
      the event loop (as the session's reads already are): each SELECT is its own read transaction, and WAL means
      it never waits for a writer.
    - PostgreSQL: asyncpg's own pool (``CRP_DATABASE_READ_POOL_SIZE`` connections, opened as needed),
      autocommit, one round trip, the statement compiled once by SQLAlchemy, a connection found broken (a restart)
      tried once more.
      Only statements whose columns the driver returns as SQLAlchemy would (text, numbers, decimals, dates,
      aware timestamps, JSON; ``_driver_reads``) are read this way; any other goes through the engine, in autocommit.

    Through the engine's pool each read cost more than its statement: checkout, BEGIN, ROLLBACK and checkin, each
    through SQLAlchemy's async adapter (~300-400 us a read; ~50 us on SQLite and ~150 us on PostgreSQL this way).
    A session's unit of work and identity map cost more still; a read that needs one snapshot across several
    statements keeps using the session (``one_snapshot``). Rows read both ways answer ``row.name`` and
    ``row._mapping["name"]``."""

    __slots__ = ("_engine", "_settings", "_sqlite_path", "_sqlite", "_pool", "_pool_lock", "_compiled")

    def __init__(self, engine: AsyncEngine, settings: CommonSettings) -> None:
        postgresql = engine.dialect.name == "postgresql"
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT") if postgresql else engine
        self._settings = settings
        path = None if postgresql else engine.url.database
        self._sqlite_path = path if path and path != ":memory:" else None
        self._sqlite: Any = None
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        # statement -> _SEEN (read once), _ENGINE, or (its PostgreSQL SQL, its binds' type decorators)
        self._compiled: Any = weakref.WeakKeyDictionary()

    async def all(self, stmt: Any, params: dict[str, Any] | None = None) -> list[Any]:
        if self._sqlite_path is not None:
            try:
                return self._sqlite_connection().execute(stmt, params).all()
            except exc.DBAPIError:
                self.close()  # the next read opens the file again
                raise
        compiled = self._compiled.get(stmt)
        if compiled is None:  # first read of this statement: through the engine (its cache knows the shape)
            self._compiled[stmt] = _SEEN
        elif compiled is _SEEN:  # read again: a statement kept for reuse, worth compiling for the driver
            sql = _compile_for_driver(stmt, self._engine.dialect)
            compiled = self._compiled[stmt] = sql if sql is _ENGINE else (sql, _bind_decorators(sql))
        if isinstance(compiled, tuple):
            sql, decorators = compiled
            values = params or {}
            if decorators:  # what SQLAlchemy's bind processing would do (e.g. a naive datetime refused)
                values = _bound(values, decorators, self._engine.dialect)
            return await self._fetch(sql.construct_expanded_state(values))
        async with self._engine.connect() as conn:
            return (await conn.execute(stmt, params)).all()

    async def first(self, stmt: Any, params: dict[str, Any] | None = None) -> Any:
        rows = await self.all(stmt, params)
        return rows[0] if rows else None

    async def _fetch(self, state: Any) -> list[Any]:
        pool = self._pool or await self._open_pool()
        for attempt in (1, 2):
            async with pool.acquire() as connection:
                try:
                    return await connection.fetch(state.statement, *state.positional_parameters)
                except Exception as error:
                    # A pooled connection the server dropped (restart): once more, on a new one. asyncpg may not have
                    # closed it yet (InternalClientError: its protocol still consumes the server's goodbye), so it is
                    # closed here, or the pool would hand it out again. If asyncpg has closed it, it has also given
                    # it back to the pool and detached it from this proxy (InterfaceError): nothing left to close.
                    if attempt == 2 or not (is_connection_error(error)
                                            or isinstance(error, asyncpg.exceptions.InternalClientError)):
                        raise
                    with contextlib.suppress(asyncpg.exceptions.InterfaceError):
                        connection.terminate()
        raise AssertionError("unreachable")

    async def _open_pool(self) -> Any:
        async with self._pool_lock:
            if self._pool is None:
                url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
                self._pool = await asyncpg.create_pool(
                    url, min_size=0, max_size=self._settings.database_read_pool_size, reset=_no_reset,
                    init=_json_codecs, record_class=ReadRow, server_settings={
                        "search_path": self._settings.schema or "public",
                        "application_name": f"crp-reads-{self._settings.schema or 'public'}"[:63]})
        return self._pool

    def _sqlite_connection(self) -> Any:
        if self._sqlite is None:
            from sqlalchemy import create_engine as create_sync_engine
            from sqlalchemy.pool import StaticPool

            engine = create_sync_engine(
                f"sqlite:///{self._sqlite_path}", poolclass=StaticPool, hide_parameters=True,
                isolation_level="AUTOCOMMIT",
                connect_args={"timeout": SQLITE_LOCK_TIMEOUT, "check_same_thread": False})
            self._sqlite = engine.connect()
        return self._sqlite

    def close(self) -> None:
        """Close the process's SQLite read connection (at shutdown, or after an error); no-op otherwise."""
        connection, self._sqlite = self._sqlite, None
        if connection is not None:
            connection.close()
            connection.engine.dispose()

    async def aclose(self) -> None:
        """At shutdown: the SQLite connection and the PostgreSQL pool."""
        self.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 5)
            except TimeoutError:
                pool.terminate()


class ReadRow(asyncpg.Record):
    """A row as asyncpg returns it (``Reads`` on PostgreSQL), read like SQLAlchemy's: ``row.name``,
    ``row._mapping["name"]``."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> Any:
        return self


async def _no_reset(_connection: Any) -> None:
    """A read connection changes no session state (autocommit SELECTs): nothing to reset between uses (asyncpg's
    default reset is one more round trip per read)."""


async def _json_codecs(connection: Any) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


_SEEN, _ENGINE = object(), object()


def _compile_for_driver(stmt: Any, dialect: Any) -> Any:
    """``stmt`` compiled for asyncpg when the driver returns each of its columns as SQLAlchemy would (no result
    processing beyond what ``_driver_reads`` accepts), else ``_ENGINE``.

    Compiled once per statement object, with the values it holds: only a statement read more than once (kept for
    reuse, its values bound per request: ``read_in_scope``, ``paginate``'s pages of a kept statement) is worth it;
    a statement built for one request goes through the engine, whose cache compiles each shape once."""
    if not isinstance(stmt, Select) or not all(_driver_reads(c.type) for c in stmt.selected_columns):
        return _ENGINE
    return stmt.compile(dialect=dialect)


def _bind_decorators(compiled: Any) -> dict[str, Any]:
    """The bound parameters of ``compiled`` whose type processes their values (a ``TypeDecorator``'s
    ``process_bind_param``, e.g. ``UTCDateTime`` refusing a naive datetime): name -> type. The driver is given
    values, not processed by SQLAlchemy, so ``Reads`` processes them as it would."""
    from sqlalchemy import TypeDecorator

    return {name: bind.type for name, bind in compiled.binds.items() if isinstance(bind.type, TypeDecorator)
            and type(bind.type).process_bind_param is not TypeDecorator.process_bind_param}


def _bound(values: dict[str, Any], decorators: dict[str, Any], dialect: Any) -> dict[str, Any]:
    processed = dict(values)
    for name, kind in decorators.items():
        if name in processed:
            value = processed[name]
            processed[name] = ([kind.process_bind_param(v, dialect) for v in value] if isinstance(value, list | tuple)
                               else kind.process_bind_param(value, dialect))
    return processed


def _driver_reads(kind: Any) -> bool:
    """Whether asyncpg returns a column of type ``kind`` as SQLAlchemy would: plain text (not an Enum), numbers,
    booleans, dates, JSON (with ``_json_codecs``), and SQLModel's aware UTC timestamps and strings; nothing else
    (another type decorator may process its values). Numbers: integers; floats as floats; NUMERIC as decimals (the
    driver's ``Decimal``, which SQLAlchemy's asyncpg dialect returns unprocessed), not a Float asked as a decimal
    nor a Numeric asked as a float (SQLAlchemy converts those)."""
    from sqlalchemy import JSON, Boolean, Date, Enum, Float, Integer, Numeric, String, TypeDecorator
    from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

    if isinstance(kind, TypeDecorator):
        return type(kind) in (AutoString, UTCDateTime)
    if isinstance(kind, Float):
        return not kind.asdecimal
    if isinstance(kind, Numeric):
        return bool(kind.asdecimal)
    return isinstance(kind, String | Integer | Boolean | Date | JSON) and not isinstance(kind, Enum)


async def get_reads(request: Request) -> Reads:
    return request.app.state.reads


ReadsDep = Annotated[Reads, Depends(get_reads)]
