"""Resource centres, feedback cases and their history, the PIN throttle, community activities; outbox,
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
        "resource_centres",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("community_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("opening_hours", sa.String(200)),
        sa.Column("contact_channel", sa.String(200)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("reference", sa.String(16), nullable=False, unique=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("sensitive", sa.Boolean, nullable=False),
        sa.Column("description_sealed", sa.Text, nullable=False),
        sa.Column("anonymous", sa.Boolean, nullable=False),
        sa.Column("contact_sealed", sa.Text),
        sa.Column("pin_hash", sa.String(64), nullable=False),
        sa.Column("pin_key_chain", sa.String(200), nullable=False),
        sa.Column("community_id", sa.String(36), index=True),
        sa.Column("district_pcode", sa.String(16)),
        sa.Column("governorate_pcode", sa.String(16), index=True),
        sa.Column("resource_centre_id", sa.String(36), sa.ForeignKey("resource_centres.id")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledge_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolve_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("response_sealed", sa.Text),
        sa.Column("responded_at", sa.DateTime(timezone=True)),
        sa.Column("referred_to_sealed", sa.Text),
        sa.Column("referral_consent", sa.Boolean),
        sa.Column("referred_at", sa.DateTime(timezone=True)),
        sa.Column("satisfaction", sa.String(24)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feedback_sensitive_status", "feedback", ["sensitive", "status"])
    op.create_table(
        "feedback_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("feedback_id", sa.String(36), sa.ForeignKey("feedback.id"), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("previous_status", sa.String(16)),
        sa.Column("note_sealed", sa.Text),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "pin_throttle",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "community_activities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(24), nullable=False, index=True),
        sa.Column("community_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("resource_centre_id", sa.String(36), sa.ForeignKey("resource_centres.id")),
        sa.Column("held_on", sa.Date, nullable=False),
        sa.Column("facilitators", sa.Text, nullable=False),
        sa.Column("participants_total", sa.Integer, nullable=False),
        sa.Column("participants_female", sa.Integer, nullable=False),
        sa.Column("participants_male", sa.Integer, nullable=False),
        sa.Column("participants_idp", sa.Integer, nullable=False),
        sa.Column("participants_returnee", sa.Integer, nullable=False),
        sa.Column("participants_host_community", sa.Integer, nullable=False),
        sa.Column("groups_represented", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text),
        sa.Column("follow_up_actions", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    for table in ("community_activities", "pin_throttle", "feedback_history", "feedback", "resource_centres",
                  "audit_log", "idempotency_keys", "outbox"):
        op.drop_table(table)
