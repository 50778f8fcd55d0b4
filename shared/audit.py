"""Audit log: who changed which fields of which record, and when. Field names only, never values."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.auth import Principal
from shared.db import utcnow
from shared.observability import request_id_var


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    entity: str = Field(max_length=64)
    entity_id: str = Field(max_length=36, index=True)
    action: str = Field(max_length=64)
    actor: str = Field(max_length=255)
    fields: str = Field(sa_column=Column(Text, nullable=False, default="[]"))
    request_id: str | None = Field(default=None, max_length=200)
    at: datetime = Field(default_factory=utcnow)


def audit(session: AsyncSession, *, principal: Principal, entity: str, entity_id: str, action: str,
          fields: Iterable[str] = ()) -> None:
    """Add an audit entry to the current transaction."""
    session.add(AuditEntry(entity=entity, entity_id=entity_id, action=action, actor=principal.sub,
                           fields=json.dumps(sorted(fields)), request_id=request_id_var.get()))
