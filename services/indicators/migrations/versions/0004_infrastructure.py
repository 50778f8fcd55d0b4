"""Infrastructure projections: the project table grows the whole snapshot (revision, status, sector, P-codes,
catchment breakdown, dates), and completed community assessments get a table.

The project table held no rows before this revision (no service produced its events), so it is recreated rather
than altered; a projection can be rebuilt from the stream at any time anyway.

Revision ID: 0004_infrastructure
Revises: 0003_training
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_infrastructure"
down_revision = "0003_training"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("infrastructure_projects")
    op.create_table(
        "infrastructure_projects",
        sa.Column("project_id", sa.String(36), primary_key=True),
        sa.Column("community_id", sa.String(36), nullable=False, index=True),
        sa.Column("catchment_population", sa.Integer, nullable=False),
        sa.Column("completed_on", sa.Date),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sector", sa.String(16), nullable=False),
        sa.Column("district_pcode", sa.String(16)),
        sa.Column("governorate_pcode", sa.String(16), index=True),
        sa.Column("answers_priority", sa.Boolean, nullable=False),
        sa.Column("catchment_female", sa.Integer),
        sa.Column("catchment_male", sa.Integer),
        sa.Column("catchment_idp", sa.Integer),
        sa.Column("catchment_returnee", sa.Integer),
        sa.Column("catchment_host_community", sa.Integer),
        sa.Column("progress_percent", sa.Integer, nullable=False),
        sa.Column("started_on", sa.Date),
        sa.Column("handed_over_on", sa.Date),
        sa.Column("cancelled_on", sa.Date),
    )
    op.create_table(
        "infrastructure_assessments",
        sa.Column("assessment_id", sa.String(36), primary_key=True),
        sa.Column("community_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("completed_on", sa.Date, nullable=False),
        sa.Column("participants_female", sa.Integer, nullable=False),
        sa.Column("participants_male", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("infrastructure_assessments")
    op.drop_table("infrastructure_projects")
    op.create_table(
        "infrastructure_projects",
        sa.Column("project_id", sa.String(36), primary_key=True),
        sa.Column("community_id", sa.String(36), nullable=False),
        sa.Column("catchment_population", sa.Integer, nullable=False),
        sa.Column("completed_on", sa.Date),
    )
