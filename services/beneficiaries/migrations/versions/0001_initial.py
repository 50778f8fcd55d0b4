"""Communities, households, beneficiaries; outbox, idempotency keys and audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

from shared.migrations import create_audit_table, create_outbox_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_tables(op)
    create_audit_table(op)
    op.create_table(
        "communities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_ar", sa.String(200)),
        sa.Column("district_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("latitude", sa.Float),
        sa.Column("longitude", sa.Float),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "households",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("community_id", sa.String(36), sa.ForeignKey("communities.id"), nullable=False, index=True),
        sa.Column("size", sa.Integer),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "beneficiaries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("first_name", sa.String(100), nullable=False),
        sa.Column("father_name", sa.String(100), nullable=False),
        sa.Column("grandfather_name", sa.String(100)),
        sa.Column("family_name", sa.String(100)),
        sa.Column("search_key", sa.String(600), nullable=False),
        sa.Column("sex", sa.String(8), nullable=False),
        sa.Column("date_of_birth", sa.Date, nullable=False),
        sa.Column("birth_year", sa.Integer, nullable=False),
        sa.Column("displacement_status", sa.String(16), nullable=False, index=True),
        sa.Column("community_id", sa.String(36), sa.ForeignKey("communities.id"), nullable=False, index=True),
        sa.Column("household_id", sa.String(36), sa.ForeignKey("households.id")),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("phone", sa.String(32)),
        sa.Column("national_id_hash", sa.String(64), unique=True),
        sa.Column("disability", sa.JSON),
        sa.Column("consent_obtained_on", sa.Date, nullable=False),
        sa.Column("merged_into_id", sa.String(36), index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Duplicate detection blocks on district and birth year.
    op.create_index("ix_beneficiaries_block", "beneficiaries", ["district_pcode", "birth_year"])


def downgrade() -> None:
    for table in ("beneficiaries", "households", "communities", "audit_log", "idempotency_keys", "outbox"):
        op.drop_table(table)
