"""Erasure of a person's personal data: when it happened (the record stays as an anonymous count); an index on
``updated_at`` for the retention job.

Revision ID: 0004_erasure
Revises: 0003_imports
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_erasure"
down_revision = "0003_imports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("beneficiaries") as batch:
        batch.add_column(sa.Column("erased_on", sa.Date))
        batch.create_index("ix_beneficiaries_updated_at", ["updated_at"])


def downgrade() -> None:
    with op.batch_alter_table("beneficiaries") as batch:
        batch.drop_index("ix_beneficiaries_updated_at")
        batch.drop_column("erased_on")
