"""Community assessments and their priorities, infrastructure projects and their progress history; outbox,
idempotency keys and audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
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
        "community_assessments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("community_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("assessed_on", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("completed_on", sa.Date),
        sa.Column("participants_female", sa.Integer, nullable=False),
        sa.Column("participants_male", sa.Integer, nullable=False),
        sa.Column("participants_idp", sa.Integer, nullable=False),
        sa.Column("participants_returnee", sa.Integer, nullable=False),
        sa.Column("participants_host_community", sa.Integer, nullable=False),
        sa.Column("local_authority", sa.String(200)),
        sa.Column("contributions", sa.JSON, nullable=False),
        sa.Column("conflict_sensitivity", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "assessment_priorities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("assessment_id", sa.String(36), sa.ForeignKey("community_assessments.id"), nullable=False,
                  index=True),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("sector", sa.String(16), nullable=False),
        sa.Column("need", sa.String(500), nullable=False),
        sa.UniqueConstraint("assessment_id", "rank", name="uq_assessment_priorities_rank"),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("sector", sa.String(16), nullable=False, index=True),
        sa.Column("community_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("assessment_id", sa.String(36), sa.ForeignKey("community_assessments.id")),
        sa.Column("assessment_priority_id", sa.String(36), sa.ForeignKey("assessment_priorities.id")),
        sa.Column("priority_rank", sa.Integer),
        sa.Column("justification", sa.String(2000)),
        sa.Column("budget", sa.Numeric(16, 2)),
        sa.Column("currency", sa.String(3)),
        sa.Column("community_contribution", sa.String(500)),
        sa.Column("contractor", sa.String(200)),
        sa.Column("planned_start", sa.Date),
        sa.Column("planned_end", sa.Date),
        sa.Column("latitude", sa.Float),
        sa.Column("longitude", sa.Float),
        sa.Column("catchment_population", sa.Integer, nullable=False),
        sa.Column("catchment_female", sa.Integer),
        sa.Column("catchment_male", sa.Integer),
        sa.Column("catchment_idp", sa.Integer),
        sa.Column("catchment_returnee", sa.Integer),
        sa.Column("catchment_host_community", sa.Integer),
        sa.Column("risks_to_mitigate", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("progress_percent", sa.Integer, nullable=False),
        sa.Column("started_on", sa.Date),
        sa.Column("completed_on", sa.Date),
        sa.Column("handed_over_on", sa.Date),
        sa.Column("handover_authority", sa.String(200)),
        sa.Column("cancelled_on", sa.Date),
        sa.Column("cancellation_reason", sa.String(500)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_projects_governorate_status", "projects",
                    ["governorate_pcode", "status"])
    op.create_table(
        "project_progress",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False,
                  index=True),
        sa.Column("percent", sa.Integer, nullable=False),
        sa.Column("note", sa.String(1000)),
        sa.Column("reported_on", sa.Date, nullable=False),
        sa.Column("recorded_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("project_progress")
    op.drop_table("projects")
    op.drop_table("assessment_priorities")
    op.drop_table("community_assessments")
