"""Projections, processed events, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

from shared.migrations import create_consumer_tables, create_outbox_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_tables(op)
    create_consumer_tables(op)
    op.create_table(
        "persons",
        sa.Column("beneficiary_id", sa.String(36), primary_key=True),
        sa.Column("registered", sa.Boolean, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("sex", sa.String(8)),
        sa.Column("birth_year", sa.Integer),
        sa.Column("displacement_status", sa.String(16)),
        sa.Column("has_disability", sa.Boolean),
        sa.Column("community_id", sa.String(36)),
        sa.Column("household_id", sa.String(36)),
        sa.Column("district_pcode", sa.String(16)),
        sa.Column("governorate_pcode", sa.String(16), index=True),
        sa.Column("registered_at", sa.DateTime(timezone=True)),
        sa.Column("merged_into_id", sa.String(36), index=True),
    )
    op.create_table(
        "community_refs",
        sa.Column("community_id", sa.String(36), primary_key=True),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
    )
    op.create_table(
        "assistance",
        sa.Column("source_id", sa.String(80), primary_key=True),
        sa.Column("person_id", sa.String(36), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("on", sa.Date, nullable=False),
    )
    op.create_table(
        "infrastructure_projects",
        sa.Column("project_id", sa.String(36), primary_key=True),
        sa.Column("community_id", sa.String(36), nullable=False),
        sa.Column("catchment_population", sa.Integer, nullable=False),
        sa.Column("completed_on", sa.Date),
    )


def downgrade() -> None:
    for table in ("infrastructure_projects", "assistance", "community_refs", "persons", "dead_letters",
                  "processed_events", "idempotency_keys", "outbox"):
        op.drop_table(table)
