"""Rate-limit buckets in the gateway's database, so that every replica counts against the same limit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Unlogged on PostgreSQL: a hit is not worth a WAL flush, and buckets lost in a crash only refill early.
    unlogged = ["UNLOGGED"] if op.get_bind().dialect.name == "postgresql" else []
    op.create_table(
        "rate_limits",
        sa.Column("client", sa.String(200), primary_key=True),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("granted", sa.Boolean, nullable=False),
        prefixes=unlogged,
    )
    op.create_index("ix_rate_limits_updated_at", "rate_limits", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_rate_limits_updated_at", table_name="rate_limits")
    op.drop_table("rate_limits")
