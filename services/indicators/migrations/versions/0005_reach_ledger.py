"""The reach ledger: assistance tagged with pillar and place, one reach row per person and its counts; the
registered people's month and age at registration; the logframe (periods, targets, frozen figures).

Existing rows are carried over: assistance takes its pillar and place from its disbursement or enrolment, and
the reach rows and counts are computed from persons and assistance (as ``services.indicators.reach`` does).

Revision ID: 0005_reach_ledger
Revises: 0004_feedback
Create Date: 2026-11-29
"""
from collections import Counter
from typing import Any

import sqlalchemy as sa
from alembic import op

from shared.events import age_group

revision = "0005_reach_ledger"
down_revision = "0004_feedback"
branch_labels = None
depends_on = None

CELL = ("governorate_pcode", "pillar", "sex", "age_group", "displacement_status", "disability")
MONTHLY = ("month", "governorate_pcode", "pillar", "sex", "age_group")
REGISTERED = ("governorate_pcode", "month", "sex", "age_group", "displacement_status", "disability")
LENGTHS = {"month": 7, "governorate_pcode": 16, "pillar": 24, "sex": 8, "age_group": 8, "displacement_status": 16,
           "disability": 8}


def upgrade() -> None:
    op.add_column("persons", sa.Column("registered_month", sa.String(7)))
    op.add_column("persons", sa.Column("registered_age_group", sa.String(8)))
    op.add_column("assistance", sa.Column("pillar", sa.String(24), nullable=False, server_default="unknown"))
    op.add_column("assistance", sa.Column("community_id", sa.String(36)))
    op.add_column("assistance", sa.Column("district_pcode", sa.String(16)))
    op.add_column("assistance", sa.Column("governorate_pcode", sa.String(16)))
    op.create_table(
        "reach",
        sa.Column("person_id", sa.String(36), primary_key=True),
        sa.Column("first_on", sa.Date, nullable=False, index=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("pillar", sa.String(24), nullable=False),
        sa.Column("community_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_pcode", sa.String(16), nullable=False),
        sa.Column("governorate_pcode", sa.String(16), nullable=False),
        sa.Column("sex", sa.String(8), nullable=False),
        sa.Column("age_group", sa.String(8), nullable=False),
        sa.Column("displacement_status", sa.String(16), nullable=False),
        sa.Column("disability", sa.String(8), nullable=False),
        sa.Index("ix_reach_governorate_first_on", "governorate_pcode", "first_on"),
    )
    for table, key in (("reach_cells", CELL), ("reach_monthly", MONTHLY)):
        op.create_table(table, *(sa.Column(name, sa.String(LENGTHS[name]), primary_key=True) for name in key),
                        sa.Column("people", sa.Integer, nullable=False))
    op.create_table("registered_cells", *(sa.Column(name, sa.String(LENGTHS[name]), primary_key=True)
                                          for name in REGISTERED),
                    sa.Column("people", sa.Integer, nullable=False))
    op.create_table(
        "reach_communities",
        sa.Column("community_id", sa.String(36), primary_key=True),
        sa.Column("governorate_pcode", sa.String(16), nullable=False, index=True),
        sa.Column("people", sa.Integer, nullable=False),
    )
    op.create_table(
        "reporting_periods",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("starts_on", sa.Date, nullable=False),
        sa.Column("ends_on", sa.Date, nullable=False),
        sa.Column("frozen_at", sa.DateTime(timezone=True)),
        sa.Column("frozen_by", sa.String(255)),
    )
    op.create_table(
        "indicator_targets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("indicator", sa.String(64), nullable=False),
        sa.Column("period_code", sa.String(32), nullable=False, index=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("target", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(255), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("indicator", "period_code", "scope"),
    )
    op.create_table(
        "frozen_figures",
        sa.Column("period_code", sa.String(32), primary_key=True),
        sa.Column("indicator", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    _carry_over()


def _carry_over() -> None:
    bind = op.get_bind()
    for kind, table, key, pillar in (("disbursement", "grant_disbursements", "disbursement_id", "'local_economies'"),
                                     ("enrolment", "training_enrolments", "enrolment_id",
                                      "CASE WHEN t.audience = 'local_authority_staff' THEN 'good_governance' "
                                      "ELSE 'human_capital' END")):
        district = "t.district_pcode" if table == "training_enrolments" else "NULL"
        rows = bind.execute(sa.text(
            f"SELECT a.source_id, {pillar}, t.community_id, {district}, t.governorate_pcode FROM assistance a "
            f"JOIN {table} t ON a.source_id = '{kind}:' || t.{key}")).all()
        for source_id, pillar_value, community, district_pcode, governorate in rows:
            bind.execute(sa.text("UPDATE assistance SET pillar = :p, community_id = :c, district_pcode = :d, "
                                 "governorate_pcode = :g WHERE source_id = :s"),
                         dict(p=pillar_value, c=community, d=district_pcode, g=governorate, s=source_id))
    persons = {row.beneficiary_id: row for row in bind.execute(sa.text(
        "SELECT beneficiary_id, sex, birth_year, displacement_status, has_disability, registered_at, merged_into_id, "
        "registered, governorate_pcode FROM persons")).all()}
    registered: Counter[tuple[str, ...]] = Counter()
    for row in persons.values():
        month = band = None
        if row.registered_at is not None:
            at = str(row.registered_at)  # a datetime on PostgreSQL, ISO text on SQLite
            month, band = at[:7], _band(row.birth_year, int(at[:4]))
            bind.execute(sa.text("UPDATE persons SET registered_month = :m, registered_age_group = :a "
                                 "WHERE beneficiary_id = :b"), dict(m=month, a=band, b=row.beneficiary_id))
        if row.registered and row.merged_into_id is None:
            registered[(row.governorate_pcode or "unknown", month or "unknown", row.sex or "unknown",
                        band or "unknown", row.displacement_status or "unknown",
                        "unknown" if row.has_disability is None else ("yes" if row.has_disability else "no"))] += 1
    for key, people in registered.items():
        bind.execute(sa.text("INSERT INTO registered_cells VALUES (:a, :b, :c, :d, :e, :f, :n)"),
                     dict(zip("abcdef", key, strict=True), n=people))
    first: dict[str, Any] = {}
    for a in bind.execute(sa.text("SELECT source_id, person_id, \"on\", pillar, community_id, district_pcode, "
                                  "governorate_pcode FROM assistance")).all():
        person = _survivor(persons, a.person_id)
        on = str(a.on)[:10]
        if person not in first or (on, a.source_id) < (str(first[person].on)[:10], first[person].source_id):
            first[person] = a
    cells: Counter[tuple[str, ...]] = Counter()
    monthly: Counter[tuple[str, ...]] = Counter()
    communities: dict[str, list[Any]] = {}
    for person_id, a in first.items():
        p = persons.get(person_id)
        on = str(a.on)[:10]
        values = dict(person_id=person_id, first_on=a.on, month=on[:7], pillar=a.pillar,
                      community_id=a.community_id or "unknown", district_pcode=a.district_pcode or "unknown",
                      governorate_pcode=a.governorate_pcode or "unknown",
                      sex=(p.sex if p is not None and p.sex else "unknown"),
                      age_group=_band(p.birth_year if p is not None else None, int(on[:4])),
                      displacement_status=(p.displacement_status if p is not None and p.displacement_status
                                           else "unknown"),
                      disability=("unknown" if p is None or p.has_disability is None
                                  else ("yes" if p.has_disability else "no")))
        bind.execute(sa.text("INSERT INTO reach VALUES (:person_id, :first_on, :month, :pillar, :community_id, "
                             ":district_pcode, :governorate_pcode, :sex, :age_group, :displacement_status, "
                             ":disability)"), values)
        cells[tuple(values[name] for name in CELL)] += 1
        monthly[tuple(values[name] for name in MONTHLY)] += 1
        communities.setdefault(values["community_id"], [values["governorate_pcode"], 0])[1] += 1
    for key, people in cells.items():
        bind.execute(sa.text("INSERT INTO reach_cells VALUES (:a, :b, :c, :d, :e, :f, :n)"),
                     dict(zip("abcdef", key, strict=True), n=people))
    for key, people in monthly.items():
        bind.execute(sa.text("INSERT INTO reach_monthly VALUES (:a, :b, :c, :d, :e, :n)"),
                     dict(zip("abcde", key, strict=True), n=people))
    for community, (governorate, people) in communities.items():
        bind.execute(sa.text("INSERT INTO reach_communities VALUES (:c, :g, :n)"),
                     dict(c=community, g=governorate, n=people))


def _band(birth_year: int | None, year: int) -> str:
    from datetime import date

    return age_group(birth_year, date(year, 1, 1)) if birth_year else "unknown"


def _survivor(persons: dict[str, Any], person_id: str) -> str:
    seen = {person_id}
    while (row := persons.get(person_id)) is not None and row.merged_into_id and row.merged_into_id not in seen:
        person_id = row.merged_into_id
        seen.add(person_id)
    return person_id


def downgrade() -> None:
    for table in ("frozen_figures", "indicator_targets", "reporting_periods", "reach_communities",
                  "registered_cells", "reach_monthly", "reach_cells", "reach"):
        op.drop_table(table)
    with op.batch_alter_table("assistance") as batch:
        for column in ("governorate_pcode", "district_pcode", "community_id", "pillar"):
            batch.drop_column(column)
    with op.batch_alter_table("persons") as batch:
        batch.drop_column("registered_age_group")
        batch.drop_column("registered_month")
