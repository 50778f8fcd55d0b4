"""Tables of bulk imports: a job per uploaded file (by content hash) and one row per record with its outcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from services.beneficiaries.models import new_id
from shared.db import utcnow


class ImportJob(SQLModel, table=True):
    __tablename__ = "beneficiary_imports"
    # The same file from the same caller is the same job: a re-upload returns it instead of importing twice.
    __table_args__ = (UniqueConstraint("owner", "content_hash", name="uq_beneficiary_imports_owner_content"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    owner: str = Field(max_length=255)  # the token subject that uploaded it
    roles: list[str] = Field(sa_column=Column(JSON, nullable=False))  # the uploader's, applied by the worker
    governorates: list[str] = Field(sa_column=Column(JSON, nullable=False))
    content_hash: str = Field(max_length=64)
    format: str = Field(max_length=8)  # csv | json
    status: str = Field(max_length=16, index=True)  # queued | running | completed
    total_rows: int
    processed_rows: int = 0
    created_rows: int = 0
    duplicate_rows: int = 0
    invalid_rows: int = 0
    request_id: str | None = Field(default=None, max_length=200)
    traceparent: str | None = Field(default=None, max_length=55)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class ImportRow(SQLModel, table=True):
    __tablename__ = "beneficiary_import_rows"
    __table_args__ = (Index("ix_beneficiary_import_rows_job_status", "job_id", "status", "row_number"),)

    job_id: str = Field(primary_key=True, max_length=36, foreign_key="beneficiary_imports.id")
    row_number: int = Field(primary_key=True)  # 1-based, data rows only (a CSV header is not a row)
    # pending | created | duplicate | invalid. The record itself is sealed (shared.pii.seal) while it may
    # still be needed (pending, or a duplicate awaiting review), and dropped once it is registered.
    status: str = Field(max_length=16)
    record: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    beneficiary_id: str | None = Field(default=None, max_length=36, index=True)
    candidates: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    errors: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    confirmed: bool = False  # registered after a reviewer confirmed it is not a duplicate
    updated_at: datetime = Field(default_factory=utcnow)
