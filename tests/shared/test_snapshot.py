"""``shared.db.one_snapshot``: figures a request reads in several statements agree with each other, even while a
writer commits between them (PostgreSQL: one REPEATABLE READ snapshot instead of autocommit reads)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from sqlalchemy import text

from shared import db
from shared.settings import CommonSettings
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="CRP_TEST_POSTGRES_URL not set")


async def _reads_around_a_commit(snapshot: bool) -> tuple[int, int]:
    table = f"public.snapshot_{uuid.uuid4().hex[:10]}"
    writer = await asyncpg.connect(POSTGRES_URL)
    engine = db.create_engine(CommonSettings(env="dev", database_url=POSTGRES_URL, service_name="snapshot"))
    try:
        await writer.execute(f"CREATE TABLE {table} (n int)")
        await writer.execute(f"INSERT INTO {table} VALUES (1)")
        token = db._read_only.set(True)  # a GET request's session
        try:
            async with db.create_sessionmaker(engine)() as session:
                if snapshot:
                    await db.one_snapshot(session)
                count = text(f"SELECT count(*) FROM {table}")
                first = (await session.execute(count)).scalar_one()
                await writer.execute(f"INSERT INTO {table} VALUES (2)")  # committed between the two reads
                second = (await session.execute(count)).scalar_one()
        finally:
            db._read_only.reset(token)
        return first, second
    finally:
        await writer.execute(f"DROP TABLE IF EXISTS {table}")
        await writer.close()
        await engine.dispose()


async def test_one_snapshot_reads_agree_across_a_concurrent_commit() -> None:
    assert await _reads_around_a_commit(snapshot=True) == (1, 1)
    # Without it each read of a GET sees the latest commit: the check above can fail.
    assert await _reads_around_a_commit(snapshot=False) == (1, 2)
