"""``Idempotency-Key`` on POST: the same key and body replay the first response with no second effect.

The stored response is written in the same transaction as the change it describes, so a
retried request after a crash either finds it or finds nothing done.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from shared.auth import CurrentPrincipal
from shared.db import SessionDep, utcnow
from shared.errors import Unprocessable

T = TypeVar("T")

REPLAYED_HEADER = "Idempotency-Replayed"
_KEPT_HEADERS = ("etag", "location")


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    principal: str = Field(primary_key=True, max_length=255)
    key: str = Field(primary_key=True, max_length=255)
    method: str = Field(max_length=10)
    path: str = Field(max_length=500)
    request_hash: str = Field(max_length=64)
    status_code: int
    body: str = Field(sa_column=Column(Text, nullable=False))
    headers: str = Field(sa_column=Column(Text, nullable=False, default="{}"))
    created_at: datetime = Field(default_factory=utcnow)


class Idempotency:
    """Per-request helper. A POST route is one call::

        return await idem.once(svc.create_thing(session=session, ...), ThingPublic.model_validate, status_code=201)

    (``replay()`` before the work and ``respond()`` after it, for the rare route that needs them apart).
    """

    def __init__(self, request: Request, session: Any, principal_sub: str) -> None:
        self.request = request
        self.session = session
        self.principal = principal_sub
        self.key = request.headers.get("idempotency-key")
        self._hash: str | None = None
        if self.key is not None and not (0 < len(self.key) <= 255):
            raise Unprocessable("Idempotency-Key must be 1 to 255 characters")

    def in_session(self, session: Any) -> Idempotency:
        """This request's key, checked and stored in ``session``'s transaction instead of the request's own (a group
        commit writes several requests in one transaction: ``shared.group_commit``)."""
        other = copy.copy(self)
        other.session = session
        return other

    async def _request_hash(self) -> str:
        if self._hash is None:
            body = await self.request.body()
            h = hashlib.sha256()
            h.update(self.request.method.encode() + b" " + self.request.url.path.encode() + b"\n")
            h.update(body)
            self._hash = h.hexdigest()
        return self._hash

    async def replay(self) -> JSONResponse | None:
        """The stored response for this key, or None when the key is new (or absent)."""
        if self.key is None:
            return None
        record = await self.session.get(IdempotencyRecord, (self.principal, self.key))
        if record is None:
            return None
        if record.request_hash != await self._request_hash():
            raise Unprocessable("This Idempotency-Key was already used with a different request",
                                slug="idempotency-key-reused")
        headers = json.loads(record.headers)
        headers[REPLAYED_HEADER] = "true"
        return JSONResponse(json.loads(record.body), status_code=record.status_code, headers=headers)

    async def once(self, work: Coroutine[Any, Any, T], render: Callable[[T], Any], *, status_code: int = 200,
                   headers: Callable[[T], dict[str, str]] | None = None) -> JSONResponse:
        """The stored response when the key was used before (``work`` is then never run); else run ``work``,
        render its result, and store the response in the same transaction as the work's change."""
        try:
            replay = await self.replay()
        except BaseException:  # e.g. the key was used with another body: the work is never started
            work.close()
            raise
        if replay is not None:
            work.close()
            return replay
        result = await work
        return await self.respond(render(result), status_code=status_code,
                                  headers=headers(result) if headers else None)

    async def respond(self, content: Any, *, status_code: int = 200,
                      headers: dict[str, str] | None = None) -> JSONResponse:
        """Render the response and, under a key, store it in the current transaction."""
        # A model (the usual case) renders itself; jsonable_encoder walked it again in Python.
        body = (content.model_dump(mode="json", by_alias=True) if isinstance(content, BaseModel)
                else jsonable_encoder(content))
        response = JSONResponse(body, status_code=status_code, headers=headers)
        if self.key is not None:
            kept = {k: v for k, v in (headers or {}).items() if k.lower() in _KEPT_HEADERS}
            self.session.add(IdempotencyRecord(
                principal=self.principal, key=self.key, method=self.request.method,
                path=self.request.url.path, request_hash=await self._request_hash(),
                status_code=status_code, body=json.dumps(body), headers=json.dumps(kept)))
        return response


async def get_idempotency(request: Request, session: SessionDep, principal: CurrentPrincipal) -> Idempotency:
    return Idempotency(request, session, principal.sub)


IdempotencyDep = Annotated[Idempotency, Depends(get_idempotency)]


async def get_unbound_idempotency(request: Request, principal: CurrentPrincipal) -> Idempotency:
    """The helper without the request's session, for a route whose work runs in a transaction of its own: bind it
    with ``in_session`` (a group commit: ``shared.group_commit``)."""
    return Idempotency(request, None, principal.sub)


UnboundIdempotencyDep = Annotated[Idempotency, Depends(get_unbound_idempotency)]
IDEMPOTENCY_DEPENDENCIES = frozenset({get_idempotency, get_unbound_idempotency})
"""A route that depends on one of these honours ``Idempotency-Key`` (documented in its OpenAPI operation)."""
