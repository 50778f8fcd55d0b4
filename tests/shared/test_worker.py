"""Background workers stop when asked, even when a cancellation is swallowed once (Python 3.11's wait_for)."""

from __future__ import annotations

import asyncio

from shared.worker import BackgroundWorker


class SwallowsOneCancel(BackgroundWorker):
    """Loses the first cancellation, as ``asyncio.wait_for`` does when the awaited event fires at that moment."""

    name = "swallows-one-cancel"

    def __init__(self) -> None:
        super().__init__()
        self.swallowed = 0

    async def run(self) -> None:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1


async def test_a_worker_that_loses_a_cancellation_is_cancelled_again_and_stops() -> None:
    worker = SwallowsOneCancel()
    worker.start()
    await asyncio.sleep(0.01)
    await worker.stop(timeout=30)
    assert worker.swallowed == 1
    assert worker._task is not None and worker._task.done()  # stopped, not abandoned after the timeout
