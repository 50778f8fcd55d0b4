"""The import worker: runs queued import jobs in the service's background, a batch per transaction."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from services.beneficiaries.imports import service as imports
from shared.db import reading, run_after_commit_hooks
from shared.observability import continue_trace, request_id_var
from shared.settings import CommonSettings
from shared.worker import BackgroundWorker, retry_forever

log = logging.getLogger("crp.beneficiaries.imports")


class ImportWorker(BackgroundWorker):
    """Takes the oldest unfinished job and processes it batch by batch until it is complete.

    Each batch (rows, their registrations and events, the job's progress) is one transaction, so a restart
    resumes where the last commit left off. Several replicas may run it: a job's batches are serialised by
    a lock (``imports._lock_job``), and each one reads the rows still pending after it got the lock.
    """

    def __init__(self, app: FastAPI, settings: CommonSettings, *, poll_seconds: float = 2.0) -> None:
        super().__init__()
        self.name = f"imports-{settings.service_name}"
        self.settings = settings
        self.sessionmaker = app.state.sessionmaker
        self.outbox = app.state.outbox
        self.batch_size = int(getattr(settings, "import_batch_size", 500))
        sqlite = app.state.engine.dialect.name == "sqlite"
        self.pause = float(getattr(settings, "import_pause_seconds", 0.15)) if sqlite else 0.0
        self.poll_seconds = poll_seconds
        self.wakeup = app.state.import_wakeup = asyncio.Event()

    async def run(self) -> None:
        retrying = retry_forever(f"{self.name} batch")
        while True:
            self.wakeup.clear()
            if await retrying(self.work_once):
                # SQLite's waiting writers poll for the lock: leave them a gap, or an import starves them.
                await asyncio.sleep(self.pause)
                continue
            try:  # woken when an upload commits; the poll picks up jobs uploaded to another replica
                await asyncio.wait_for(self.wakeup.wait(), self.poll_seconds)
            except TimeoutError:
                pass

    async def work_once(self) -> bool:
        """Process one batch of the oldest unfinished job; False when there is nothing to do."""
        with reading():
            async with self.sessionmaker() as session:
                job_id = await imports.next_job(session)
        if job_id is None:
            return False
        async with self.sessionmaker() as session:
            async with session.begin():
                job = await session.get(imports.ImportJob, job_id)
                token = request_id_var.set(job.request_id if job else None)  # audit entries name the upload
                try:  # the upload's trace goes on into the rows' events
                    with continue_trace(job.traceparent if job else None, "import batch", import_id=job_id):
                        await imports.process_batch(session=session, outbox=self.outbox, settings=self.settings,
                                                    job_id=job_id, batch_size=self.batch_size)
                finally:
                    request_id_var.reset(token)
            run_after_commit_hooks(session)
        return True
