"""SQLite writers of a service process (shared.db): BEGIN IMMEDIATE and small commits run on the event loop, yet a
writer still waits for another process holding SQLite's write lock, every commit is durable in the file, and the
WAL is checkpointed although SQLite's automatic checkpoint is off on these connections."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from sqlalchemy import text

from shared import db
from shared.db import create_engine
from shared.settings import CommonSettings


def engine_on(path: Path) -> object:
    return create_engine(CommonSettings(database_url=f"sqlite:///{path}"))


async def test_a_writer_waits_for_another_process_then_commits(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    engine = engine_on(path)
    try:
        async with engine.begin() as conn:  # type: ignore[attr-defined]
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # another process (crp pii rotate) holds the write lock
        released = threading.Event()

        def release_later() -> None:
            time.sleep(0.5)
            other.execute("INSERT INTO t VALUES (1)")
            other.execute("COMMIT")
            released.set()

        threading.Thread(target=release_later, daemon=True).start()
        ticks = 0

        async def tick() -> None:  # the event loop keeps running while the writer waits
            nonlocal ticks
            while not released.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        ticking = asyncio.create_task(tick())
        async with engine.begin() as conn:  # type: ignore[attr-defined]
            await conn.execute(text("INSERT INTO t VALUES (2)"))
        await ticking
        assert released.is_set() and ticks > 10  # it waited in the thread, not by blocking the loop
        other.close()
        check = sqlite3.connect(path)
        assert sorted(x for (x,) in check.execute("SELECT x FROM t")) == [1, 2]
        check.close()
    finally:
        await engine.dispose()  # type: ignore[attr-defined]


async def test_commits_are_durable_and_the_wal_is_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    engine = engine_on(path)
    try:
        async with engine.begin() as conn:  # type: ignore[attr-defined]
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))

        async def write(i: int) -> None:
            async with engine.begin() as conn:  # type: ignore[attr-defined]
                await conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": i})

        commits = 6 * db.CHECKPOINT_EVERY
        await asyncio.gather(*(write(i) for i in range(commits)))
        async with engine.begin() as conn:  # type: ignore[attr-defined]  # a large transaction
            await conn.execute(text("INSERT INTO t VALUES (:x)"),
                               [{"x": -i} for i in range(db.SMALL_TRANSACTION_ROWS + 1)])
        reader = sqlite3.connect(path)
        assert reader.execute("SELECT count(*) FROM t").fetchone() == (commits + db.SMALL_TRANSACTION_ROWS + 1,)
        reader.close()
        # Each commit appends at least one page to the WAL; checkpointed by the writers, the WAL is reused from
        # its start and stays near CHECKPOINT_EVERY commits' pages (with automatic checkpoints off and none of
        # ours, it would hold all of them).
        wal = path.with_name(path.name + "-wal").stat().st_size
        assert wal < 3 * db.CHECKPOINT_EVERY * 4096, wal
    finally:
        await engine.dispose()  # type: ignore[attr-defined]
