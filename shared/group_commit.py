"""Group commit: concurrent requests for the same write are written together, in one transaction.

A request ``submit``s its item and waits. The writer takes whatever is waiting (at most ``max_size``), writes it
with one call of ``write`` (one transaction), and answers each request: a lone request is written at once, and the
requests that arrive meanwhile form the next batch. There is no artificial delay.

``write`` returns one outcome per item: the value to answer with, or the exception to raise in that request. Its
transaction must be committed before it returns, so an answer means "stored". A batch is only an optimisation:

- when ``write`` raises (a unique violation, ``WriteEachAlone``, any error), its transaction was rolled back and
  the items are written one by one, in order, each by ``alone`` in its own transaction and in its own request's
  context (request id, trace): each gets the answer it would have got without batching;
- when the database is unavailable, every request of the batch gets the usual 503 (no retry: a commit whose
  connection was lost may have been applied);
- a request whose client gave up before its batch was taken is not written; one that gives up later is written,
  and the others' answers do not depend on it. The writer never dies of an error (it logs class names only, never
  the items' data). On shutdown the batch being written is finished, and the requests still waiting get None
  from ``submit``: they write their item alone themselves.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from prometheus_client import Counter, Histogram

from shared.db import is_connection_error
from shared.errors import database_unavailable_problem, describe
from shared.worker import BackgroundWorker

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("crp.group_commit")

FAILED = Counter("crp_group_commit_failed_batches_total", "Batches rolled back and written one by one", ["name"])


class WriteEachAlone(Exception):
    """Raised by ``write`` when a batch cannot be written together: its items are then written one by one."""


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    future: asyncio.Future[R | None]
    context: contextvars.Context  # the request's (its request id and trace), for writing it alone


class GroupCommit(BackgroundWorker, Generic[T, R]):
    def __init__(self, name: str, write: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
                 alone: Callable[[T], Awaitable[R]], *, max_size: int, sizes: Histogram | None = None) -> None:
        super().__init__()
        self.name = name
        self.write = write
        self.alone = alone
        self.max_size = max_size
        self.sizes = sizes  # observes each batch's size
        self._queue: asyncio.Queue[_Waiting[T, R]] = asyncio.Queue()
        self._writing: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, item: T) -> R | None:
        """``item``'s outcome once it is committed (an exception is raised here), or None when the writer is
        stopping: then write it alone."""
        if self._closed or self._task is None:
            return None
        waiting = _Waiting[T, R](item, asyncio.get_running_loop().create_future(), contextvars.copy_context())
        self._queue.put_nowait(waiting)
        return await waiting.future  # a cancelled caller cancels its future: the writer skips or ignores it

    @property
    def waiting(self) -> int:
        """Requests waiting for the next batch."""
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [w for w in batch if not w.future.done()]  # its client gave up
            if self._closed:
                _answer(batch, None)
            elif batch:
                # Shielded: stopping the writer lets the batch being written finish (``stop``).
                self._writing = asyncio.create_task(self._write(batch), name=f"{self.name}-batch")
                await asyncio.shield(self._writing)

    async def _write(self, batch: list[_Waiting[T, R]]) -> None:
        if self.sizes is not None:
            self.sizes.observe(len(batch))
        try:
            outcomes: Sequence[Any] = await self.write([w.item for w in batch])
        except Exception as error:  # never the items' data in the log: class names and SQLSTATE only
            if is_connection_error(error):
                log.warning("%s: database unavailable (%s)", self.name, describe(error))
                outcomes = [database_unavailable_problem() for _ in batch]
            else:
                log.info("%s: a batch of %d was rolled back (%s); each is written alone", self.name, len(batch),
                         describe(error))
                FAILED.labels(self.name).inc()
                await self._each_alone(batch)
                return
        except BaseException:  # cancelled mid-batch (the event loop is closing): they write their item alone
            _answer(batch, None)
            raise
        for waiting, outcome in zip(batch, outcomes, strict=True):
            _settle(waiting.future, outcome)

    async def _each_alone(self, batch: list[_Waiting[T, R]]) -> None:
        """The items of a rolled-back batch, one after the other, each as its request would write it."""
        for i, waiting in enumerate(batch):
            if waiting.future.done():
                continue
            task = asyncio.create_task(self.alone(waiting.item), context=waiting.context)
            task.add_done_callback(lambda done, future=waiting.future: _settle(  # type: ignore[misc]
                future, None if done.cancelled() else done.exception() or done.result()))
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:  # the event loop is closing: the rest write their item alone
                _answer(batch[i + 1:], None)
                raise

    async def stop(self, timeout: float = 5.0) -> None:
        """Take no more batches, let the one being written finish, and send the waiting requests their own way."""
        self._closed = True
        if self._writing is not None and not self._writing.done():
            await asyncio.wait({self._writing}, timeout=timeout)
        await super().stop(timeout)
        while not self._queue.empty():
            _answer([self._queue.get_nowait()], None)


def _settle(future: asyncio.Future[Any], outcome: Any) -> None:
    if future.done():  # its client gave up meanwhile
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _answer(batch: Sequence[_Waiting[Any, Any]], result: Any) -> None:
    for waiting in batch:
        _settle(waiting.future, result)
