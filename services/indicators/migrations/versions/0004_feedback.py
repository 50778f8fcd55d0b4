"""Feedback projections: cases (no text), resource centres, community activities.

Revision ID: 0004_feedback
Revises: 0004_infrastructure
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_feedback"
down_revision = "0004_infrastructure"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback_cases",
        sa.Column("feedback_id", sa.String(36), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("sensitive", sa.Boolean, nullable=False),
        sa.Column("community_id", sa.String(36)),
        sa.Column("governorate_pcode", sa.String(16), index=True),
        sa.Column("resource_centre_id", sa.String(36)),
        sa.Column("received_on", sa.Date, nullable=False),
        sa.Column("resolved_within_service_level", sa.Boolean),
    )
    op.create_table(
        "feedback_resource_centres",
        sa.Column("resource_centre_id", sa.String(36), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("community_id", sa.String(36), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("active", sa.Boolean, nullable=False),
    )
    op.create_table(
        "community_activity_facts",
        sa.Column("activity_id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("community_id", sa.String(36), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("held_on", sa.Date, nullable=False),
        sa.Column("participants_total", sa.Integer, nullable=False),
        sa.Column("participants_female", sa.Integer, nullable=False),
        sa.Column("participants_male", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("community_activity_facts")
    op.drop_table("feedback_resource_centres")
    op.drop_table("feedback_cases")
