"""Cursor pagination: ``?limit=`` and ``?cursor=``, ``{items, next_cursor}`` and a ``Link`` header.

Keyset on (created_at, id), newest first: stable under inserts and cheap at any depth.
"""

from __future__ import annotations

import base64
import json
import weakref
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import Integer, Select, bindparam, tuple_

from shared.db import Reads
from shared.errors import Unprocessable
from shared.urls import public_url

T = TypeVar("T")

LimitQuery = Annotated[int, Query(ge=1, le=500, description="Page size (default 50, at most 500).")]
CursorQuery = Annotated[str | None, Query(description="The `next_cursor` of the previous page.")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(created_at: datetime, id_: str) -> str:
    raw = json.dumps([created_at.isoformat(), id_]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, id_ = json.loads(raw)
        return datetime.fromisoformat(created), str(id_)
    except (ValueError, TypeError) as exc:
        raise Unprocessable("The cursor is not valid", errors=[{"loc": ["query", "cursor"],
                                                                "msg": "invalid cursor"}]) from exc


async def paginate(session: Any, stmt: Select[Any], model: Any, *, limit: int, cursor: str | None,
                   request: Request, response: Response, rows_only: bool = False,
                   params: dict[str, Any] | None = None) -> tuple[list[Any], str | None]:
    """Run ``stmt`` one page at a time; sets the ``Link`` header and returns (rows, next_cursor).

    ``rows_only``: the page is rendered and nothing in it changes, so the table's columns are read as Core
    rows (attribute access like the model, read-only) on the session's connection (or ``Reads``): no ORM
    identity load.
    ``params``: the values of ``stmt``'s bound parameters. A statement built once and reused with its values bound
    per request (``params``) is paged by one statement built once too: SQLAlchemy then neither rebuilds nor
    re-keys it for its compiled cache, a good part of a page's cost.
    """
    paged = _paged(stmt, model, bool(cursor), rows_only)
    values = dict(params or {}, _page_limit=limit + 1)
    if cursor:
        values["_page_created"], values["_page_id"] = decode_cursor(cursor)
    if rows_only:
        rows = await session.all(paged, values) if isinstance(session, Reads) else list(
            (await (await session.connection()).execute(paged, values)).all())
    else:
        rows = list((await session.execute(paged, values)).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        query = request.url.include_query_params(cursor=next_cursor, limit=limit).query
        next_url = public_url(request, f"{request.url.path}?{query}")
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return rows, next_cursor


_PAGED: weakref.WeakKeyDictionary[Select[Any], dict[tuple[bool, bool], Select[Any]]] = weakref.WeakKeyDictionary()


def _paged(stmt: Select[Any], model: Any, after_cursor: bool, rows_only: bool) -> Select[Any]:
    """``stmt`` ordered newest first, after the cursor's (created_at, id) if any, limited: built once per
    statement (kept as long as ``stmt`` lives), its cursor and limit bound per request."""
    built = _PAGED.setdefault(stmt, {})
    paged = built.get((after_cursor, rows_only))
    if paged is None:
        columns = model.__table__.c
        paged = stmt
        if after_cursor:
            paged = paged.where(tuple_(columns.created_at, columns.id) < tuple_(
                bindparam("_page_created", type_=columns.created_at.type),
                bindparam("_page_id", type_=columns.id.type)))
        paged = paged.order_by(columns.created_at.desc(), columns.id.desc()).limit(
            bindparam("_page_limit", type_=Integer()))
        if rows_only:
            paged = paged.with_only_columns(*columns)
        built[(after_cursor, rows_only)] = paged
    return paged
