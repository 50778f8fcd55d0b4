"""Housekeeping: published outbox rows and old idempotency keys are deleted after a retention period.

Nothing is lost: a published event lives on in the stream; an idempotency key only has to outlive
any sensible retry by a client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.db import utcnow
from shared.idempotency import IdempotencyRecord
from shared.outbox import OutboxMessage
from shared.settings import CommonSettings
from shared.worker import BackgroundWorker, retry_forever

log = logging.getLogger("crp.housekeeping")


async def purge(session: AsyncSession, settings: CommonSettings) -> tuple[int, int]:
    """Delete what is past retention; returns (outbox rows, idempotency keys) deleted."""
    now = utcnow()
    outbox = await session.execute(delete(OutboxMessage).where(
        OutboxMessage.published_at < now - timedelta(days=settings.outbox_retention_days)))  # type: ignore[operator]
    keys = await session.execute(delete(IdempotencyRecord).where(
        IdempotencyRecord.created_at < now - timedelta(days=settings.idempotency_retention_days)))
    return outbox.rowcount or 0, keys.rowcount or 0


class Housekeeping(BackgroundWorker):
    def __init__(self, settings: CommonSettings, sessionmaker: async_sessionmaker[AsyncSession],
                 extra: Callable[[AsyncSession, CommonSettings], Awaitable[int]] | None = None) -> None:
        super().__init__()
        self.extra = extra  # the service's own retention (``Service.housekeeping``)
        self.name = f"housekeeping-{settings.service_name}"
        self.settings = settings
        self.sessionmaker = sessionmaker

    async def _once(self) -> None:
        async with self.sessionmaker() as session, session.begin():
            outbox, keys = await purge(session, self.settings)
            erased = await self.extra(session, self.settings) if self.extra is not None else 0
        if outbox or keys or erased:
            log.info("purged", extra={"outbox_rows": outbox, "idempotency_keys": keys, "erased": erased})

    async def run(self) -> None:
        retrying = retry_forever(self.name)
        while True:
            await retrying(self._once)
            await asyncio.sleep(self.settings.housekeeping_interval_seconds)
