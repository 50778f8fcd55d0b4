"""Cursor pagination: ``?limit=`` and ``?cursor=``, ``{items, next_cursor}`` and a ``Link`` header.

Keyset on (created_at, id), newest first: stable under inserts and cheap at any depth.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import Select, tuple_

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
                   request: Request, response: Response, rows_only: bool = False) -> tuple[list[Any], str | None]:
    """Run ``stmt`` one page at a time; sets the ``Link`` header and returns (rows, next_cursor).

    ``rows_only``: the page is rendered and nothing in it changes, so the table's columns are read as Core
    rows (attribute access like the model, read-only) on the session's connection: no ORM identity load.
    """
    if cursor:
        created, id_ = decode_cursor(cursor)
        stmt = stmt.where(tuple_(model.created_at, model.id) < tuple_(created, id_))
    stmt = stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    if rows_only:
        stmt = stmt.with_only_columns(*model.__table__.c)
        rows = list((await (await session.connection()).execute(stmt)).all())
    else:
        rows = list((await session.execute(stmt)).scalars())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        query = request.url.include_query_params(cursor=next_cursor, limit=limit).query
        next_url = public_url(request, f"{request.url.path}?{query}")
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return rows, next_cursor
