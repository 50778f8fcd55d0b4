"""Training projections: enrolments (with completions) and employment follow-ups.

Revision ID: 0003_training
Revises: 0003_grants
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_training"
down_revision = "0003_grants"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_enrolments",
        sa.Column("enrolment_id", sa.String(36), primary_key=True),
        sa.Column("person_id", sa.String(36), nullable=False, index=True),
        sa.Column("course_id", sa.String(36), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("skill_area", sa.String(64), nullable=False),
        sa.Column("audience", sa.String(32), nullable=False),
        sa.Column("community_id", sa.String(36), nullable=False),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("completed_on", sa.Date),
    )
    op.create_table(
        "training_follow_ups",
        sa.Column("follow_up_id", sa.String(36), primary_key=True),
        sa.Column("enrolment_id", sa.String(36), nullable=False, index=True),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("months_after", sa.Integer, nullable=False),
        sa.Column("employment_status", sa.String(16), nullable=False),
        sa.Column("income_band", sa.String(16), nullable=False),
        sa.Column("recorded_on", sa.Date, nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("training_follow_ups")
    op.drop_table("training_enrolments")
