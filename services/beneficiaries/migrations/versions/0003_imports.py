"""Bulk imports (a job per uploaded file, one row per record with its outcome) and KoboToolbox sources.

Revision ID: 0003_imports
Revises: 0003
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_imports"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "beneficiary_imports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("governorates", sa.JSON, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("total_rows", sa.Integer, nullable=False),
        sa.Column("processed_rows", sa.Integer, nullable=False),
        sa.Column("created_rows", sa.Integer, nullable=False),
        sa.Column("duplicate_rows", sa.Integer, nullable=False),
        sa.Column("invalid_rows", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(200)),
        sa.Column("traceparent", sa.String(55)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("owner", "content_hash", name="uq_beneficiary_imports_owner_content"),
    )
    op.create_table(
        "beneficiary_import_rows",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("beneficiary_imports.id"), primary_key=True),
        sa.Column("row_number", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("record", sa.Text),
        sa.Column("beneficiary_id", sa.String(36), index=True),
        sa.Column("candidates", sa.JSON),
        sa.Column("errors", sa.JSON),
        sa.Column("confirmed", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_beneficiary_import_rows_job_status", "beneficiary_import_rows",
                    ["job_id", "status", "row_number"])
    op.create_table(
        "kobo_sources",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("server_url", sa.String(500), nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("asset_uid", sa.String(64), nullable=False),
        sa.Column("mapping", sa.JSON, nullable=False),
        sa.Column("defaults", sa.JSON, nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("roles", sa.JSON, nullable=False),
        sa.Column("governorates", sa.JSON, nullable=False),
        sa.Column("pull_interval_minutes", sa.Integer, nullable=False),
        sa.Column("last_submission_time", sa.String(40)),
        sa.Column("pull_requested_at", sa.DateTime(timezone=True)),
        sa.Column("last_pulled_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "kobo_pulls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("source_id", sa.String(36), sa.ForeignKey("kobo_sources.id"), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("submissions", sa.Integer, nullable=False),
        sa.Column("imported", sa.Integer, nullable=False),
        sa.Column("already_known", sa.Integer, nullable=False),
        sa.Column("import_id", sa.String(36)),
        sa.Column("error", sa.String(500)),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "kobo_submissions",
        sa.Column("source_id", sa.String(36), sa.ForeignKey("kobo_sources.id"), primary_key=True),
        sa.Column("uuid", sa.String(64), primary_key=True),
        sa.Column("submission_id", sa.Integer),
        sa.Column("submission_time", sa.String(40), nullable=False),
        sa.Column("import_id", sa.String(36), nullable=False),
        sa.Column("row_number", sa.Integer, nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kobo_submissions")
    op.drop_table("kobo_pulls")
    op.drop_table("kobo_sources")
    op.drop_table("beneficiary_import_rows")
    op.drop_table("beneficiary_imports")
