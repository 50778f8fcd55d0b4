"""Nationwide duplicate detection: each person's blocking key (backfilled), and the adjudication queue.

The blocking key is computed from the names already stored (``matching.blocking_key``, the rules of this
release); ``crp beneficiaries rescan`` recomputes it whenever the rules change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

from services.beneficiaries.matching import PersonName, blocking_key

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BATCH = 2000


def upgrade() -> None:
    with op.batch_alter_table("beneficiaries") as batch:
        batch.add_column(sa.Column("blocking_key", sa.String(80), nullable=False, server_default=""))
    people = sa.table("beneficiaries", sa.column("id", sa.String), sa.column("first_name", sa.String),
                      sa.column("father_name", sa.String), sa.column("blocking_key", sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(people.c.id, people.c.first_name, people.c.father_name)).all()
    for start in range(0, len(rows), BATCH):
        conn.execute(people.update().where(people.c.id == sa.bindparam("pid"))
                     .values(blocking_key=sa.bindparam("key")),
                     [{"pid": id_, "key": blocking_key(PersonName(first_name=first, father_name=father))}
                      for id_, first, father in rows[start:start + BATCH]])
    with op.batch_alter_table("beneficiaries") as batch:
        batch.alter_column("blocking_key", server_default=None)
        batch.drop_index("ix_beneficiaries_block")
        batch.create_index("ix_beneficiaries_blocking_key", ["blocking_key", "birth_year"])
    op.create_table(
        "duplicate_reviews",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("pair", sa.String(73), nullable=False, unique=True),
        sa.Column("beneficiary_id", sa.String(36), nullable=False, index=True),
        sa.Column("candidate_id", sa.String(36), nullable=False, index=True),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("survivor_id", sa.String(36)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("duplicate_reviews")
    with op.batch_alter_table("beneficiaries") as batch:
        batch.drop_index("ix_beneficiaries_blocking_key")
        batch.create_index("ix_beneficiaries_block", ["district_pcode", "birth_year"])
        batch.drop_column("blocking_key")
