"""Background workers (outbox relay, event consumers) and the one retry policy they share."""

from __future__ import annotations

import asyncio
import logging
import traceback

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

log = logging.getLogger("crp.worker")


def backoff_seconds(attempt: int) -> float:
    """The one backoff curve: 0.1 s after the first failure, doubling, capped at 5 s."""
    return min(5.0, 0.1 * 2 ** (attempt - 1))


def retry_forever(what: str, retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception
                  ) -> AsyncRetrying:
    """Retry on ``retry_on`` (any error by default) with ``backoff_seconds``, logging each failure.

    Cancellation is not an error, so stopping a worker still stops it at once.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0
        cause = exc.__cause__ if exc is not None and exc.__cause__ is not None else exc
        log.warning("%s failed (%s: %s); retrying in %.1fs", what, type(cause).__name__, cause, delay)

    return AsyncRetrying(wait=lambda state: backoff_seconds(state.attempt_number),
                         retry=retry_if_exception_type(retry_on), before_sleep=before_sleep, reraise=True)


class BackgroundWorker:
    """A task started in the app's lifespan and cancelled when it ends."""

    name = "worker"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self, timeout: float = 5.0) -> None:
        """Cancel and wait a bounded time: a stuck worker must not keep the process from stopping."""
        if self._task is None:
            return
        # Cancel again until it ends: on Python 3.11, ``asyncio.wait_for`` swallows a cancellation that lands as
        # the awaited event fires (a commit's wake-up, say), and the loop would go on until the timeout.
        deadline = asyncio.get_running_loop().time() + timeout
        done: set[asyncio.Task[None]] = set()
        while not done and (left := deadline - asyncio.get_running_loop().time()) > 0:
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=min(0.05, left))
        if not done:
            stack = "".join(traceback.format_list(traceback.extract_stack(self._task.get_stack()[-1])))
            log.error("%s did not stop within %.0fs; abandoning it at:\n%s", self.name, timeout, stack)

    async def run(self) -> None:
        raise NotImplementedError
