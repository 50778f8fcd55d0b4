"""Tests of reads without a session (``shared.db.Reads``): another connection holding the write lock with an
uncommitted change, for tests that reads do not wait for it; and the rows they give, against the engine's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any


@contextlib.asynccontextmanager
async def uncommitted_update(app: Any, backend: str, table: str, id_: str, **values: Any) -> AsyncIterator[None]:
    """While inside, another connection holds an uncommitted ``UPDATE table SET values WHERE id = id_`` (SQLite:
    under BEGIN IMMEDIATE, the database's write lock; PostgreSQL: the row's lock), rolled back on leaving."""
    names = list(values)
    if backend == "sqlite":
        import sqlite3

        other: Any = sqlite3.connect(app.state.settings.database_url.split(":///", 1)[1], isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute(f"UPDATE {table} SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
                          (*values.values(), id_))
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
    else:
        import asyncpg

        from tests.conftest import POSTGRES_URL

        other = await asyncpg.connect(POSTGRES_URL, server_settings={"search_path": app.state.settings.schema})
        try:
            await other.execute("BEGIN")
            sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, 1))
            await other.execute(f"UPDATE {table} SET {sets} WHERE id = ${len(names) + 1}", *values.values(), id_)
            yield
        finally:
            await other.close()


async def answers_as_committed_while_locked(client: Any, app: Any, backend: str, table: str, id_: str,
                                            paths: Mapping[str, dict[str, str]], **values: Any) -> dict[str, Any]:
    """GET each of ``paths`` (path -> headers), then again while ``uncommitted_update(table, id_, values)`` holds
    the write lock: each answers within 5 s, 200, with the body and ETag it had before (the committed values; a read
    that took SQLite's write lock would wait for it). Returns the answers given during the lock."""
    before = {path: await client.get(path, headers=headers) for path, headers in paths.items()}
    async with uncommitted_update(app, backend, table, id_, **values):
        async with asyncio.timeout(5):
            during = {path: await client.get(path, headers=headers) for path, headers in paths.items()}
    for path, resp in during.items():
        assert resp.status_code == 200 and resp.json() == before[path].json(), path
        assert resp.headers.get("etag") == before[path].headers.get("etag"), path
    return during


async def read_as_the_engine(app: Any, stmt: Any, params: dict[str, Any], *, reads: int = 2) -> list[Any]:
    """Read ``stmt`` ``reads`` times through ``app.state.reads`` (the first through the engine, the next, a kept
    statement, through the driver on PostgreSQL) and assert that every row gives each column's value, type and text
    as the engine's does, by attribute and through ``_mapping``. The rows read."""
    rows = [await app.state.reads.first(stmt, params) for _ in range(reads)]
    async with app.state.engine.connect() as conn:
        expected = (await conn.execute(stmt, params)).first()
    assert expected is not None
    for row in rows:
        assert row is not None
        for name in expected._mapping.keys():
            assert getattr(row, name) == getattr(expected, name), name
            assert type(getattr(row, name)) is type(getattr(expected, name)), name
            assert str(getattr(row, name)) == str(getattr(expected, name)), name  # e.g. a decimal's places
            assert row._mapping[name] == expected._mapping[name], name
    return rows
