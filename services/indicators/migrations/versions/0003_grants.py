"""Grant projections: applications' decisions, disbursements (with reversal tombstones), monitoring visits.

Revision ID: 0003_grants
Revises: 0002
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_grants"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "grant_applications",
        sa.Column("grant_id", sa.String(36), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("call_id", sa.String(36)),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
    )
    op.create_table(
        "grant_disbursements",
        sa.Column("disbursement_id", sa.String(36), primary_key=True),
        sa.Column("grant_id", sa.String(36), nullable=False, index=True),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("call_id", sa.String(36)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.Numeric(16, 2), nullable=False),
        sa.Column("disbursed_on", sa.Date, nullable=False),
        sa.Column("community_id", sa.String(36), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("reversed", sa.Boolean, nullable=False),
    )
    op.create_table(
        "grant_monitoring",
        sa.Column("visit_id", sa.String(36), primary_key=True),
        sa.Column("grant_id", sa.String(36), nullable=False, index=True),
        sa.Column("visited_on", sa.Date, nullable=False),
        sa.Column("business_operating", sa.Boolean, nullable=False),
        sa.Column("employees_female", sa.Integer, nullable=False),
        sa.Column("employees_male", sa.Integer, nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
    )


def downgrade() -> None:
    for table in ("grant_monitoring", "grant_disbursements", "grant_applications"):
        op.drop_table(table)
