"""Grant calls, grants, scores, disbursements, support sessions, monitoring visits; outbox, idempotency
keys and audit log.

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

MONEY = sa.Numeric(16, 2)


def upgrade() -> None:
    create_outbox_tables(op)
    create_audit_table(op)
    op.create_table(
        "grant_calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("sector", sa.String(100), nullable=False, index=True),
        sa.Column("budget", MONEY, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("committed_amount", MONEY, nullable=False),
        sa.Column("opens_on", sa.Date, nullable=False),
        sa.Column("closes_on", sa.Date, nullable=False),
        sa.Column("eligibility", sa.JSON),
        sa.Column("criteria", sa.JSON),
        sa.Column("tranches", sa.Integer, nullable=False),
        sa.Column("monitoring_required", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("grant_calls.id"), index=True),
        sa.Column("beneficiary_id", sa.String(36), nullable=False, index=True),
        sa.Column("requested_beneficiary_id", sa.String(36), nullable=False),
        sa.Column("business_name", sa.String(200), nullable=False),
        sa.Column("sector", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_requested", MONEY, nullable=False),
        sa.Column("amount_approved", MONEY),
        sa.Column("disbursed_amount", MONEY, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("decision_reason", sa.String(500)),
        sa.Column("score", sa.Float),
        sa.Column("has_disability", sa.Boolean, nullable=False),
        sa.Column("community_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("submitted_on", sa.Date, nullable=False),
        sa.Column("decided_on", sa.Date),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "grant_scores",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("grant_id", sa.String(36), sa.ForeignKey("grants.id"), nullable=False, index=True),
        sa.Column("scorer", sa.String(255), nullable=False),
        sa.Column("marks", sa.JSON, nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("grant_id", "scorer", name="uq_grant_scores_grant_scorer"),
    )
    op.create_table(
        "disbursements",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("grant_id", sa.String(36), sa.ForeignKey("grants.id"), nullable=False, index=True),
        sa.Column("tranche", sa.Integer, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("disbursed_on", sa.Date, nullable=False),
        sa.Column("reversed_on", sa.Date),
        sa.Column("reversal_reason", sa.String(500)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "support_sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("grant_id", sa.String(36), sa.ForeignKey("grants.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("held_on", sa.Date, nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "monitoring_visits",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("grant_id", sa.String(36), sa.ForeignKey("grants.id"), nullable=False, index=True),
        sa.Column("visited_on", sa.Date, nullable=False),
        sa.Column("business_operating", sa.Boolean, nullable=False),
        sa.Column("employees_female", sa.Integer, nullable=False),
        sa.Column("employees_male", sa.Integer, nullable=False),
        sa.Column("monthly_income_band", sa.String(16), nullable=False),
        sa.Column("latitude", sa.Float),
        sa.Column("longitude", sa.Float),
        sa.Column("notes", sa.String(2000)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    for table in ("monitoring_visits", "support_sessions", "disbursements", "grant_scores", "grants", "grant_calls",
                  "audit_log", "idempotency_keys", "outbox"):
        op.drop_table(table)
