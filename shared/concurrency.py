"""Optimistic concurrency: every change to a versioned row is one atomic check-and-write.

A table that declares ``Versioned`` gets a ``version`` column that the ORM uses as SQLAlchemy's
``version_id_col``: each flush of a changed row emits ``UPDATE ... SET version = :v + 1 WHERE id = :id
AND version = :v`` (``:v`` is the version this transaction read) and bumps ``row.version``. When
another transaction changed the row in between, the UPDATE matches nothing, SQLAlchemy raises
``StaleDataError`` and the request answers 412 when it carried ``If-Match`` (the ETag the caller read
is stale), else 409 ("changed concurrently; read it again"); nothing of the loser's transaction is
kept, its event included (``shared.errors``). On PostgreSQL the loser waits for the winner's row lock
and then sees the new version; on SQLite ``BEGIN IMMEDIATE`` already serialises writers, so the loser
reads the new state and fails its own check (412 or 409) before writing.

So a PATCH, or a state transition raced twice (approve, disburse, complete, status...), happens once.

How a transition is written (grants, training, infrastructure, feedback)::

    class Grant(Versioned, table=True): ...          # and a ``version`` column in the migration

    async def approve(*, session, outbox, principal, grant_id, amount):
        \"\"\"Approve a submitted grant.\"\"\"
        grant = await get_in_scope(session, Grant, grant_id, principal, label="grant")
        if grant.status != "submitted":            # the check, on the state this transaction read
            raise Conflict(f"a {grant.status} grant cannot be approved")
        grant.status, grant.amount_approved = "approved", amount
        await session.flush()                      # the write, conditioned on the version read: the loser
                                                   # of a race gets StaleDataError -> 409, and no event
        outbox.emit(session, GrantApproved(grant_id=grant.id, revision=grant.version, ...))

Rules of thumb:

- Flush before building an event, so ``revision=row.version`` is the new version.
- Never bump ``version`` by hand: the ORM does it for every flushed change.
- A transition that only inserts child rows (a disbursement, an attendance) must still change the
  parent (a running total, a status) or call ``touch(parent)``, so that concurrent ones conflict.
- A transition that changes several versioned rows (a merge) first calls ``lock_rows`` for all of
  them: the locks are taken in one order, so two crossed transitions wait instead of deadlocking,
  and the second one reads the first one's result. A deadlock or serialization failure that still
  happens answers 409 (retry) too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import declared_attr
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

M = TypeVar("M")


class Versioned(SQLModel):
    """Mixin of a table whose rows change: ``version`` guards every UPDATE (and feeds the ETag)."""

    version: int = Field(default=1)

    @declared_attr  # type: ignore[misc]
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805
        return {"version_id_col": cls.__table__.c.version}  # type: ignore[attr-defined]


def touch(row: Versioned) -> None:
    """Make ``row``'s version-checked UPDATE (and its version bump) part of the next flush, even when no
    other column of it changes."""
    row.version = row.version + 1


async def lock_rows(session: AsyncSession, model: type[M], ids: Iterable[str]) -> dict[str, M]:
    """Lock the rows ``ids`` of ``model`` in id order (``FOR UPDATE`` on PostgreSQL) and return them as
    they are now, committed changes of other transactions included. On SQLite writers are already
    serialised (``BEGIN IMMEDIATE``) and this is a plain read."""
    table: Any = model
    stmt = (select(table).where(table.id.in_(sorted(set(ids)))).order_by(table.id)
            .execution_options(populate_existing=True))
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return {row.id: row for row in (await session.execute(stmt)).scalars()}
