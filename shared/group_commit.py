"""Group commit: concurrent requests for the same write are written together, in one transaction.

A request ``submit``s its item and waits. The writer takes whatever is waiting (at most ``max_size``), writes it
with one call of ``write`` (one transaction), and answers each request: a lone request is written at once, and the
requests that arrive meanwhile form the next batch. There is no artificial delay.

``write`` returns one outcome per item: the value to answer with, or the exception to raise in that request. Its
transaction must be committed before it returns, so an answer means "stored". A batch is only an optimisation:

- when ``write`` raises (a unique violation, any error), the batch was rolled back and every one of its requests
  is answered ``None``: it then does its own work, alone, the usual way (and gets the answer it always got);
- when the database is unavailable, every request gets the usual 503 (not a retry: a commit whose connection was
  lost may have been applied);
- a request whose client gave up before its batch was taken is not written; one that gives up later is written,
  and the others' answers do not depend on it. The writer never dies of an error; on shutdown the batch being
  written is finished and the requests still waiting are answered ``None``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import Histogram

from shared.db import is_connection_error
from shared.errors import ServiceUnavailable, describe
from shared.worker import BackgroundWorker

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("crp.group_commit")


class GroupCommit(BackgroundWorker, Generic[T, R]):
    def __init__(self, name: str, write: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]], *,
                 max_size: int, sizes: Histogram | None = None) -> None:
        super().__init__()
        self.name = name
        self.write = write
        self.max_size = max_size
        self.sizes = sizes  # observes each batch's size
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R | None]]] = asyncio.Queue()
        self._writing: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, item: T) -> R | None:
        """``item``'s outcome once its batch is committed (an exception is raised here), or None: write it alone."""
        if self._closed or self._task is None:
            return None
        future: asyncio.Future[R | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future  # a cancelled caller cancels its future: the writer skips or ignores it

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(item, future) for item, future in batch if not future.done()]
            if self._closed:
                _answer(batch, None)
            elif batch:
                # Shielded: stopping the writer lets the batch being written finish (``stop``).
                self._writing = asyncio.create_task(self._write(batch), name=f"{self.name}-batch")
                await asyncio.shield(self._writing)

    async def _write(self, batch: list[tuple[T, asyncio.Future[R | None]]]) -> None:
        if self.sizes is not None:
            self.sizes.observe(len(batch))
        try:
            outcomes: Sequence[Any] = await self.write([item for item, _ in batch])
        except Exception as error:  # never the items' data in the log: class names and SQLSTATE only
            if is_connection_error(error):
                log.warning("%s: database unavailable (%s)", self.name, describe(error))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(ServiceUnavailable(
                            "The database is unavailable; nothing was stored, retry later.",
                            headers={"Retry-After": "1"}))
                return
            log.info("%s: a batch of %d failed (%s); each is written alone", self.name, len(batch), describe(error))
            outcomes = [None] * len(batch)
        except BaseException:  # cancelled mid-batch (the loop is closing): each is written alone
            _answer(batch, None)
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def stop(self, timeout: float = 5.0) -> None:
        """Take no more batches, let the one being written finish, and send the waiting requests their own way."""
        self._closed = True
        if self._writing is not None and not self._writing.done():
            await asyncio.wait({self._writing}, timeout=timeout)
        await super().stop(timeout)
        while not self._queue.empty():
            _answer([self._queue.get_nowait()], None)


def _answer(batch: Sequence[tuple[Any, asyncio.Future[Any]]], result: Any) -> None:
    for _, future in batch:
        if not future.done():
            future.set_result(result)
