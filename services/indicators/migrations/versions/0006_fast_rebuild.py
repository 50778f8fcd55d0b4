"""Residences of the directly assisted people counted per community (``reach_residences``), for the summary's
``communities_reached``; where each reach row's person lives (``reach.home_*``); an index for the summary's
``as_of`` (the latest ``processed_events.processed_at``).

Existing reach rows take their person's community and governorate, and the counts are computed from them (as
``services.indicators.reach`` keeps them).

Revision ID: 0006_fast_rebuild
Revises: 0005_webhooks
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_fast_rebuild"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reach", sa.Column("home_community_id", sa.String(36)))
    op.add_column("reach", sa.Column("home_governorate_pcode", sa.String(16)))
    op.create_table(
        "reach_residences",
        sa.Column("community_id", sa.String(36), primary_key=True),
        sa.Column("governorate_pcode", sa.String(16), primary_key=True),
        sa.Column("people", sa.Integer, nullable=False),
    )
    op.execute("UPDATE reach SET home_community_id = (SELECT community_id FROM persons "
               "WHERE persons.beneficiary_id = reach.person_id), home_governorate_pcode = (SELECT governorate_pcode "
               "FROM persons WHERE persons.beneficiary_id = reach.person_id)")
    op.execute("INSERT INTO reach_residences (community_id, governorate_pcode, people) "
               "SELECT home_community_id, COALESCE(home_governorate_pcode, 'unknown'), COUNT(*) FROM reach "
               "WHERE home_community_id IS NOT NULL GROUP BY home_community_id, COALESCE(home_governorate_pcode, "
               "'unknown')")
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_processed_events_processed_at", "processed_events")
    op.drop_table("reach_residences")
    op.drop_column("reach", "home_governorate_pcode")
    op.drop_column("reach", "home_community_id")
