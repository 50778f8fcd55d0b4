"""Indexes in the list's order: the register listed newest first (``merged_into_id IS NULL ORDER BY created_at
DESC, id DESC``), for the whole country and for one governorate, read in index order and stopped after a page.
Without them SQLite took the ``merged_into_id`` index for ``IS NULL`` (every row) and sorted the whole register
for each page: 60 ms a page at 50,000 people, growing with the register.

Revision ID: 0005_list_order
Revises: 0004_erasure
Create Date: 2026-11-29
"""
from alembic import op

revision = "0005_list_order"
down_revision = "0004_erasure"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_beneficiaries_live_order", "beneficiaries", ["merged_into_id", "created_at", "id"])
    op.create_index("ix_beneficiaries_governorate_live_order", "beneficiaries",
                    ["governorate_pcode", "merged_into_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_beneficiaries_governorate_live_order", "beneficiaries")
    op.drop_index("ix_beneficiaries_live_order", "beneficiaries")
