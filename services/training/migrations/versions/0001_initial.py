"""Courses, enrolments, attendance, follow-ups, market assessments and job opportunities; outbox,
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
        "courses",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("skill_area", sa.String(64), nullable=False, index=True),
        sa.Column("provider", sa.String(200)),
        sa.Column("community_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("planned_sessions", sa.Integer),
        sa.Column("audience", sa.String(32), nullable=False),
        sa.Column("completion_threshold", sa.Integer, nullable=False),
        sa.Column("enrolled_count", sa.Integer, nullable=False),
        sa.Column("sessions_held", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "enrolments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("course_id", sa.String(36), sa.ForeignKey("courses.id"), nullable=False),
        sa.Column("beneficiary_id", sa.String(36), nullable=False, index=True),
        sa.Column("beneficiary_governorate_pcode", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("skill_area", sa.String(64), nullable=False),
        sa.Column("community_id", sa.String(36), nullable=False),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("enrolled_on", sa.Date, nullable=False),
        sa.Column("waitlisted_at", sa.DateTime(timezone=True)),
        sa.Column("sessions_attended", sa.Integer, nullable=False),
        sa.Column("completed_on", sa.Date),
        sa.Column("certified", sa.Boolean, nullable=False),
        sa.Column("certified_on", sa.Date),
        sa.Column("override_reason", sa.String(500)),
        sa.Column("dropped_on", sa.Date),
        sa.Column("drop_reason", sa.String(32)),
        sa.Column("drop_note", sa.String(500)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_enrolments_course_status", "enrolments", ["course_id", "status"])
    op.create_table(
        "attendance",
        sa.Column("enrolment_id", sa.String(36), sa.ForeignKey("enrolments.id"), primary_key=True),
        sa.Column("session", sa.Integer, primary_key=True),
        sa.Column("course_id", sa.String(36), nullable=False, index=True),
        sa.Column("held_on", sa.Date, nullable=False),
        sa.Column("present", sa.Boolean, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("enrolment_id", sa.String(36), sa.ForeignKey("enrolments.id"), nullable=False),
        sa.Column("months_after", sa.Integer, nullable=False),
        sa.Column("employment_status", sa.String(16), nullable=False),
        sa.Column("income_band", sa.String(16), nullable=False),
        sa.Column("recorded_on", sa.Date, nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.UniqueConstraint("enrolment_id", "months_after", name="uq_follow_ups_enrolment_months"),
    )
    op.create_table(
        "market_assessments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("conducted_on", sa.Date, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "job_opportunities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("market_assessment_id", sa.String(36), sa.ForeignKey("market_assessments.id"), nullable=False,
                  index=True),
        sa.Column("employer", sa.String(200)),
        sa.Column("sector", sa.String(64), nullable=False),
        sa.Column("skill_area", sa.String(64), nullable=False, index=True),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("openings", sa.Integer, nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    for table in ("job_opportunities", "market_assessments", "follow_ups", "attendance", "enrolments", "courses",
                  "audit_log", "idempotency_keys", "outbox"):
        op.drop_table(table)
