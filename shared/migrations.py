"""Alembic: one environment (``shared/alembic_env``) for every service, each with its own revisions.

A service's revisions live in ``services/<name>/migrations/versions`` (the gateway's in
``gateway/migrations/versions``); the environment is given the service's connection and its
metadata (for ``alembic revision --autogenerate`` and the tests that compare migrations with models).
Migrations are applied at start-up (under an advisory lock on PostgreSQL) or by `crp migrate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import advisory_xact_lock
from shared.settings import CommonSettings

ENVIRONMENT = Path(__file__).parent / "alembic_env"


def alembic_config(versions: Path, metadata: MetaData | None = None, connection: Any | None = None) -> Config:
    """The Alembic configuration of one service: the shared environment, the service's revisions."""
    cfg = Config()
    cfg.set_main_option("script_location", str(ENVIRONMENT))
    cfg.set_main_option("version_locations", str(versions))
    cfg.attributes["target_metadata"] = metadata
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def upgrade(engine: AsyncEngine, settings: CommonSettings, versions: Path,
                  metadata: MetaData | None = None) -> None:
    """Bring the service's database (or PostgreSQL schema) to the newest revision in ``versions``."""
    async with engine.begin() as conn:
        if settings.schema:
            # Replicas starting together must not migrate concurrently.
            await advisory_xact_lock(conn, f"crp-migrate-{settings.schema}")
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.schema}"'))
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(versions, metadata, sync), "head"))


def metadata_of(*models: Any) -> MetaData:
    """A metadata holding just these tables (SQLModel's own holds every table imported anywhere)."""
    metadata = MetaData()
    for model in models:
        model.__table__.to_metadata(metadata)
    return metadata


def run_env() -> None:
    """Body of the one ``env.py``: runs online, on the connection the caller passed."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `crp migrate`, which passes a connection")
    context.configure(
        connection=connection,
        target_metadata=context.config.attributes.get("target_metadata"),
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


# -- tables every service has, for its migrations to create ------------------------------------
def create_outbox_tables(op: Any) -> None:
    """The outbox and the idempotency-key store (every service that accepts writes)."""
    import sqlalchemy as sa

    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(255), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def create_consumer_tables(op: Any) -> None:
    """Processed event ids, dead letters and parked events (every service that consumes events)."""
    import sqlalchemy as sa

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=True, index=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_parked_events_table(op)


def create_parked_events_table(op: Any) -> None:
    """Events of a type the consumer has no handler for yet (``shared.consumer.ParkedEvent``)."""
    import sqlalchemy as sa

    op.create_table(
        "parked_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(255), nullable=False, index=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
    )


def create_audit_table(op: Any) -> None:
    import sqlalchemy as sa

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(36), nullable=False, index=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
