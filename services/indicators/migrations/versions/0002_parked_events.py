"""Parked events: events of a type this version has no handler for, applied once a newer one runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

from shared.migrations import create_parked_events_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Databases created after create_consumer_tables grew the table already have it from 0001.
    if not sa.inspect(op.get_bind()).has_table("parked_events"):
        create_parked_events_table(op)


def downgrade() -> None:
    op.drop_table("parked_events")
