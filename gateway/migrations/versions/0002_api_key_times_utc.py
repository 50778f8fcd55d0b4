"""API key times as aware UTC (timestamptz on PostgreSQL), as the model stores them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

COLUMNS = (("created_at", False), ("rotated_at", True), ("revoked_at", True))


def upgrade() -> None:
    # Existing values were written as UTC; PostgreSQL reads a naive timestamp in the session's zone (UTC here).
    with op.batch_alter_table("api_keys") as batch:
        for name, nullable in COLUMNS:
            batch.alter_column(name, type_=sa.DateTime(timezone=True), existing_type=sa.DateTime(),
                               existing_nullable=nullable, postgresql_using=f"{name} AT TIME ZONE 'UTC'")


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        for name, nullable in COLUMNS:
            batch.alter_column(name, type_=sa.DateTime(), existing_type=sa.DateTime(timezone=True),
                               existing_nullable=nullable, postgresql_using=f"{name} AT TIME ZONE 'UTC'")
