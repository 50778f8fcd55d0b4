"""Tables of KoboToolbox sources: the source, each pull's outcome, and the submissions seen (by ``_uuid``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from services.beneficiaries.models import new_id
from shared.db import utcnow


class KoboSource(SQLModel, table=True):
    __tablename__ = "kobo_sources"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    server_url: str = Field(max_length=500)  # e.g. https://kf.kobotoolbox.org
    token: str = Field(sa_column=Column(Text, nullable=False))  # the API token, sealed (shared.pii.seal)
    asset_uid: str = Field(max_length=64)
    # XLSForm field path (``group_hh/first_name``) -> registration field (``first_name``, ``consent.given``).
    mapping: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    defaults: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # fields every submission gets
    owner: str = Field(max_length=255)  # the rows are registered under the creator's name, roles and scope
    roles: list[str] = Field(sa_column=Column(JSON, nullable=False))
    governorates: list[str] = Field(sa_column=Column(JSON, nullable=False))
    pull_interval_minutes: int = 60
    # The newest `_submission_time` imported: the next pull asks only for later ones.
    last_submission_time: str | None = Field(default=None, max_length=40)
    pull_requested_at: datetime | None = None
    last_pulled_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)


class KoboPull(SQLModel, table=True):
    __tablename__ = "kobo_pulls"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    source_id: str = Field(foreign_key="kobo_sources.id", max_length=36, index=True)
    status: str = Field(max_length=16)  # succeeded | failed
    submissions: int = 0  # received from Kobo
    imported: int = 0  # new ones, sent to the import
    already_known: int = 0  # seen before (same `_uuid`): skipped
    import_id: str | None = Field(default=None, max_length=36)
    error: str | None = Field(default=None, max_length=500)
    started_at: datetime
    finished_at: datetime = Field(default_factory=utcnow, index=True)


class KoboSubmission(SQLModel, table=True):
    __tablename__ = "kobo_submissions"

    source_id: str = Field(primary_key=True, foreign_key="kobo_sources.id", max_length=36)
    uuid: str = Field(primary_key=True, max_length=64)  # Kobo's `_uuid`
    submission_id: int | None = None  # Kobo's `_id`
    submission_time: str = Field(max_length=40)
    import_id: str = Field(max_length=36)
    row_number: int
    seen_at: datetime = Field(default_factory=utcnow)


KOBO_TABLES: tuple[type[SQLModel], ...] = (KoboSource, KoboPull, KoboSubmission)
