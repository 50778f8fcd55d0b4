"""The reach ledger: direct assistance, one person counted once, and the counts the figures read.

Every service's handlers record direct assistance the same way, inside the consumer's transaction:

    await record_assistance(session, source_id=f"disbursement:{id}", person_id=..., kind="grant",
                            pillar="local_economies", on=..., community_id=..., district_pcode=...,
                            governorate_pcode=...)
    await withdraw_assistance(session, source_id=f"disbursement:{id}")   # a reversal

A person is the survivor of any merges. ``Reach`` holds one row per directly assisted person, described at
their first assistance (date, pillar, place where it was given, age then) with their sex, displacement status
and disability from their registration (``unknown`` until it arrives). ``refresh`` recomputes that row from
``persons`` and ``assistance`` alone, so the result does not depend on the order events arrived in; every
handler that changes either calls it for the people concerned. ``ReachCell`` and ``ReachCommunity`` count the
rows of ``Reach`` per combination of low-cardinality dimensions (``ReachMonthly`` per month too; and per
community), and ``ReachResidence`` per community the people live in: the summary and most breakdowns read them
instead of the persons. A rebuild computes the same rows set-based (``services.indicators.replay``).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators.models import (
    Assistance,
    Person,
    Reach,
    ReachCell,
    ReachCommunity,
    ReachMonthly,
    ReachResidence,
    RegisteredCell,
)
from shared.events import age_group

PILLARS = ("basic_services", "local_economies", "human_capital", "good_governance", "safer_communities")
UNKNOWN = "unknown"
# The counts tables and the ``Reach`` columns each is keyed on.
COUNTS: tuple[tuple[type[Any], tuple[str, ...]], ...] = (
    (ReachCell, ("governorate_pcode", "pillar", "sex", "age_group", "displacement_status", "disability")),
    (ReachMonthly, ("month", "governorate_pcode", "pillar", "sex", "age_group")),
)


def disability(has_disability: bool | None) -> str:
    """Washington Group cut-off as the beneficiaries service applies it (any domain 3 or 4): yes, no, unknown."""
    return UNKNOWN if has_disability is None else ("yes" if has_disability else "no")


def derive_registration(person: Person) -> None:
    """The registered-people breakdown's month and age group (at registration), from the person's facts."""
    at = person.registered_at
    person.registered_month = at.strftime("%Y-%m") if at else None
    person.registered_age_group = age_group(person.birth_year, at) if at and person.birth_year else None


def registered_key(person: Person | None) -> dict[str, str] | None:
    """The registered-people cell a person counts in, or None (not registered yet, or merged into another)."""
    if person is None or not person.registered or person.merged_into_id is not None:
        return None
    return {"governorate_pcode": person.governorate_pcode or UNKNOWN, "month": person.registered_month or UNKNOWN,
            "sex": person.sex or UNKNOWN, "age_group": person.registered_age_group or UNKNOWN,
            "displacement_status": person.displacement_status or UNKNOWN,
            "disability": disability(person.has_disability)}


async def count_registered(session: AsyncSession, before: dict[str, str] | None,
                           after: dict[str, str] | None) -> None:
    """Move a person between registered-people cells after a change (from ``before``, to ``after``)."""
    if before == after:
        return
    if before is not None:
        await _bump(session, RegisteredCell, before, -1)
    if after is not None:
        await _bump(session, RegisteredCell, after, +1)


async def survivor(session: AsyncSession, beneficiary_id: str) -> str:
    """Follow merges to the record that now stands for this person."""
    seen = {beneficiary_id}
    current = await session.get(Person, beneficiary_id)
    while current is not None and current.merged_into_id and current.merged_into_id not in seen:
        seen.add(current.merged_into_id)
        beneficiary_id = current.merged_into_id
        current = await session.get(Person, beneficiary_id)
    return beneficiary_id


async def record_assistance(session: AsyncSession, *, source_id: str, person_id: str, kind: str, pillar: str,
                            on: date, community_id: str | None = None, district_pcode: str | None = None,
                            governorate_pcode: str | None = None) -> bool:
    """Add one act of direct assistance (once per ``source_id``) and refresh the person's reach.

    Returns False when it was recorded already. ``pillar`` is one of ``PILLARS``."""
    if pillar not in PILLARS:
        raise ValueError(f"unknown pillar {pillar!r}")
    if await session.get(Assistance, source_id) is not None:
        return False
    session.add(Assistance(source_id=source_id, person_id=person_id, kind=kind, pillar=pillar, on=on,
                           community_id=community_id, district_pcode=district_pcode,
                           governorate_pcode=governorate_pcode))
    await session.flush()
    await refresh(session, person_id)
    return True


async def withdraw_assistance(session: AsyncSession, *, source_id: str) -> None:
    """Remove an act of assistance (a reversal); nothing happens when it is not recorded (yet)."""
    row = await session.get(Assistance, source_id)
    if row is None:
        return
    person_id = row.person_id
    await session.delete(row)
    await session.flush()
    await refresh(session, person_id)


async def refresh(session: AsyncSession, record_id: str) -> None:
    """Recompute the reach of the person ``record_id`` stands for (and drop the record's own row once merged)."""
    current = await survivor(session, record_id)
    if current != record_id:
        await _put(session, record_id, None)
    await _put(session, current, await _compute(session, current))


async def _compute(session: AsyncSession, person_id: str) -> dict[str, Any] | None:
    members = select(Person.beneficiary_id).where(Person.merged_into_id == person_id)
    first = (await session.execute(
        select(Assistance).where(or_(Assistance.person_id == person_id,
                                     Assistance.person_id.in_(members)))  # type: ignore[attr-defined]
        .order_by(Assistance.on, Assistance.source_id).limit(1))).scalars().first()
    if first is None:
        return None
    person = await session.get(Person, person_id)
    birth_year = person.birth_year if person is not None else None
    return dict(
        first_on=first.on, month=first.on.strftime("%Y-%m"), pillar=first.pillar,
        community_id=first.community_id or UNKNOWN, district_pcode=first.district_pcode or UNKNOWN,
        governorate_pcode=first.governorate_pcode or UNKNOWN,
        sex=(person.sex if person is not None and person.sex else UNKNOWN),
        age_group=age_group(birth_year, first.on) if birth_year else UNKNOWN,
        displacement_status=(person.displacement_status if person is not None and person.displacement_status
                             else UNKNOWN),
        disability=disability(person.has_disability if person is not None else None),
        home_community_id=person.community_id if person is not None else None,
        home_governorate_pcode=person.governorate_pcode if person is not None else None)


async def _put(session: AsyncSession, person_id: str, values: dict[str, Any] | None) -> None:
    row = await session.get(Reach, person_id)
    old = None if row is None else {name: getattr(row, name) for name in values or _fields(row)}
    if old == values:
        return
    if row is not None:
        await _count(session, {name: getattr(row, name) for name in _fields(row)}, -1)
    if values is None:
        if row is not None:
            await session.delete(row)
    elif row is None:
        session.add(Reach(person_id=person_id, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
    if values is not None:
        await _count(session, values, +1)
    await session.flush()


def _fields(row: Reach) -> list[str]:
    return [name for name in Reach.model_fields if name != "person_id"]


async def _count(session: AsyncSession, values: dict[str, Any], delta: int) -> None:
    """Move one person into (+1) or out of (-1) their cells and community; cells at zero are deleted."""
    for model, dimensions in COUNTS:
        await _bump(session, model, {name: values[name] for name in dimensions}, delta)
    await _bump(session, ReachCommunity, {"community_id": values["community_id"]}, delta,
                extra={"governorate_pcode": values["governorate_pcode"]})
    if (key := residence_key(values)) is not None:
        await _bump(session, ReachResidence, key, delta)


def residence_key(values: dict[str, Any]) -> dict[str, str] | None:
    """The ``ReachResidence`` row a reach row counts in: where the person lives, if known."""
    if values.get("home_community_id") is None:
        return None
    return {"community_id": values["home_community_id"],
            "governorate_pcode": values.get("home_governorate_pcode") or UNKNOWN}


async def _bump(session: AsyncSession, model: Any, key: dict[str, Any], delta: int,
                extra: dict[str, Any] | None = None) -> None:
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(model).values(**key, **(extra or {}), people=delta)
    await session.execute(stmt.on_conflict_do_update(index_elements=list(key),
                                                     set_={"people": model.people + delta}))
    if delta < 0:
        await session.execute(delete(model).where(*(getattr(model, k) == v for k, v in key.items()),
                                                  model.people <= 0))
