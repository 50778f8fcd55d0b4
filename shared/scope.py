"""Governorate scope: a record outside the caller's governorates answers as if it did not exist."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select, bindparam, select
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


async def read_by_id(reads: Reads, model: Any, id_: str) -> Row[Any] | None:
    """The ``model`` row ``id_`` or None: one cached Core statement (``shared.db.Reads``), the columns as a
    read-only row (attribute access, like the model), no session, no ORM identity load."""
    stmt = _BY_ID.get(model)
    if stmt is None:
        table = model.__table__
        stmt = _BY_ID[model] = select(*table.c).where(table.c.id == bindparam("id"))
    return await reads.first(stmt, {"id": id_})


async def read_in_scope(reads: Reads, model: Any, id_: str, principal: Principal, *, label: str) -> Row[Any]:
    """``get_in_scope`` for a request that only reads the row (``read_by_id``)."""
    row = await read_by_id(reads, model, id_)
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


Conditions = Mapping[str, Any]
"""A list's filters: name -> a column (``column == value``), a ``(column, operator)`` pair (e.g.
``(table.c.held_on, operator.ge)``), or a function of the value giving the condition."""
_LISTS: dict[tuple[Any, ...], Select[Any]] = {}


def list_in_scope(model: Any, principal: Principal | None, conditions: Conditions, *, bound: Mapping[str, Any],
                  shape: Mapping[str, Any] | None = None) -> tuple[Select[Any], dict[str, Any]]:
    """``select_in_scope`` narrowed by a list's filters, as a statement built once per combination of filters and
    the values to bind to it for this request (``shared.pagination.paginate(..., params=)``): SQLAlchemy then
    neither rebuilds nor re-keys it, and ``shared.db.Reads`` compiles it once.

    ``conditions``: a module-level mapping (``Conditions``). ``bound``: the values bound per request (the condition
    of ``bindparam(name)``; a filter whose value is None or empty is not asked for). ``shape``: values the statement
    is built with (the condition of the value itself; e.g. a flag, the caller's roles), part of the cache key; None
    is not asked for. ``principal`` None: a programme-wide list (no scope)."""
    scope = None if principal is None else principal.scope_filter()
    params = {name: value for name, value in bound.items() if value is not None and value != ""}
    built_with = tuple((name, value) for name, value in (shape or {}).items() if value is not None)
    key = (model, id(conditions), scope is None, tuple(params), built_with)
    stmt = _LISTS.get(key)
    if stmt is None:
        table = model.__table__
        stmt = select(model)
        if scope is not None:  # the caller's governorates: lists never show what a 404 hides
            stmt = stmt.where(table.c.governorate_pcode.in_(bindparam("scope", expanding=True)))
        for name in params:
            stmt = stmt.where(_condition(conditions[name], bindparam(name)))
        for name, value in built_with:
            stmt = stmt.where(_condition(conditions[name], value))
        _LISTS[key] = stmt
    if scope is not None:
        params["scope"] = sorted(scope)
    return stmt, params


def _condition(condition: Any, value: Any) -> Any:
    if isinstance(condition, tuple):
        column, compare = condition
        return compare(column, value)
    return condition == value if isinstance(condition, ColumnElement) else condition(value)
