"""Which database errors are outages (wait, never an attempt) and which are faults of the work (poison)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import is_connection_error


async def test_a_faulty_statement_on_sqlite_is_not_an_outage(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    try:
        async with engine.connect() as conn:
            with pytest.raises(exc.OperationalError) as raised:
                await conn.execute(text("SELECT no_such_column FROM no_such_table"))
    finally:
        await engine.dispose()
    assert not is_connection_error(raised.value)  # a handler bug becomes a dead letter, not an endless wait


async def test_a_locked_or_unreadable_sqlite_file_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0.1})
    try:
        async with engine.connect() as conn:
            with pytest.raises(exc.OperationalError) as locked:
                await conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        await engine.dispose()
        holder.close()
    assert is_connection_error(locked.value)
    with pytest.raises(sqlite3.OperationalError) as unreadable:
        sqlite3.connect(tmp_path / "no" / "such" / "dir" / "x.db")
    assert is_connection_error(unreadable.value)
    assert not is_connection_error(ValueError("a handler's own bug"))
