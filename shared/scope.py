"""Governorate scope: a record outside the caller's governorates answers as if it did not exist."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Row, bindparam, select
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.auth import Principal
from shared.db import Reads
from shared.errors import NotFound

M = TypeVar("M")


async def get_in_scope(session: AsyncSession, model: type[M], id_: str, principal: Principal, *,
                       label: str) -> M:
    """The ``model`` row ``id_`` if it exists and lies in the caller's governorates, else NotFound (404)."""
    row: Any = await session.get(model, id_)
    if row is None or not principal.sees(row.governorate_pcode):
        raise NotFound(f"No {label} {id_}")
    return row


_BY_ID: dict[Any, Any] = {}


async def read_in_scope(reads: Reads, model: Any, id_: str, principal: Principal, *, label: str) -> Row[Any]:
    """``get_in_scope`` for a request that only reads the row: one cached Core statement (``shared.db.Reads``),
    the columns as a read-only ``Row`` (attribute access, like the model), no session, no ORM identity load."""
    stmt = _BY_ID.get(model)
    if stmt is None:
        table = model.__table__
        stmt = _BY_ID[model] = select(*table.c).where(table.c.id == bindparam("id"))
    row = await reads.first(stmt, {"id": id_})
    if row is None or not principal.sees(row.governorate_pcode):
        raise NotFound(f"No {label} {id_}")
    return row


def select_in_scope(model: Any, principal: Principal) -> Any:
    """``select(model)`` limited to the caller's governorates: lists never show what a 404 hides."""
    stmt = select(model)
    scope = principal.scope_filter()
    return stmt if scope is None else stmt.where(model.governorate_pcode.in_(scope))


def select_filtered(model: Any, principal: Principal, **equal: Any) -> Any:
    """``select_in_scope`` narrowed by a list's equality filters: ``column=value`` for each given value
    (None or empty means that filter is not asked for)."""
    stmt = select_in_scope(model, principal)
    for column, value in equal.items():
        if value:
            stmt = stmt.where(getattr(model, column) == value)
    return stmt
