"""The Kobo puller: pulls each source on its schedule, or at once when a pull is asked for."""

from __future__ import annotations

import asyncio
import logging

import httpx
from fastapi import FastAPI

from services.beneficiaries.kobo import service as kobo
from shared.db import reading, run_after_commit_hooks, utcnow
from shared.pii import unseal
from shared.settings import CommonSettings
from shared.worker import BackgroundWorker, retry_forever

log = logging.getLogger("crp.beneficiaries.kobo")


class KoboPuller(BackgroundWorker):
    def __init__(self, app: FastAPI, settings: CommonSettings) -> None:
        super().__init__()
        self.name = f"kobo-{settings.service_name}"
        self.app = app
        self.settings = settings
        self.sessionmaker = app.state.sessionmaker
        self.poll_seconds = float(getattr(settings, "kobo_poll_seconds", 30.0))
        self.wakeup = app.state.kobo_wakeup = asyncio.Event()

    async def run(self) -> None:
        retrying = retry_forever(self.name)
        async with httpx.AsyncClient(timeout=30, follow_redirects=False) as client:
            while True:
                self.wakeup.clear()
                await retrying(self.pull_due, client)
                try:
                    await asyncio.wait_for(self.wakeup.wait(), self.poll_seconds)
                except TimeoutError:
                    pass

    async def pull_due(self, client: httpx.AsyncClient) -> int:
        with reading():
            async with self.sessionmaker() as session:
                due = await kobo.due_sources(session)
        for source in due:
            await self.pull(client, source)
        return len(due)

    async def pull(self, client: httpx.AsyncClient, source: kobo.KoboSource) -> None:
        started = utcnow()
        try:
            submissions = await kobo.fetch_submissions(client, source, unseal(self.settings, source.token))
        except kobo.KoboError as exc:
            log.warning("Kobo source %s: %s", source.id, exc)
            async with self.sessionmaker() as session, session.begin():
                await kobo.record_failure(session=session, source_id=source.id, error=str(exc), started_at=started)
            return
        async with self.sessionmaker() as session:
            async with session.begin():
                pull = await kobo.record_pull(session=session, settings=self.settings, source_id=source.id,
                                              submissions=submissions, started_at=started)
            run_after_commit_hooks(session)
        if pull.import_id and hasattr(self.app.state, "import_wakeup"):
            self.app.state.import_wakeup.set()
        log.info("Kobo source %s pulled", source.id, extra={"submissions": pull.submissions,
                                                            "imported": pull.imported})
