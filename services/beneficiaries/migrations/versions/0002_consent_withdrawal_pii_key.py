"""Consent withdrawal; the key chain of each national-ID hash (so the key can be rotated).

Hashes stored before key ids existed were made with the key then in use, which gets the id ``k1``
(the default of ``CRP_PII_KEY_ID``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("beneficiaries") as batch:
        batch.add_column(sa.Column("consent_withdrawn_on", sa.Date))
        batch.add_column(sa.Column("consent_withdrawal_reason", sa.String(500)))
        batch.add_column(sa.Column("national_id_key", sa.String(200)))
        batch.create_index("ix_beneficiaries_national_id_key", ["national_id_key"])
    op.execute("UPDATE beneficiaries SET national_id_key = 'k1' WHERE national_id_hash IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("beneficiaries") as batch:
        batch.drop_index("ix_beneficiaries_national_id_key")
        batch.drop_column("national_id_key")
        batch.drop_column("consent_withdrawal_reason")
        batch.drop_column("consent_withdrawn_on")
