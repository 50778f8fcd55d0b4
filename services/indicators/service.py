"""Indicator figures computed from the projections, and the rebuild from the stream."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, func, select, true, union, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators.config import IndicatorsSettings
from services.indicators.models import (
    PROJECTION_TABLES,
    CommunityActivityFact,
    FeedbackCase,
    FeedbackResourceCentre,
    FrozenFigure,
    GrantApplication,
    GrantDisbursement,
    GrantMonitoring,
    IndicatorTarget,
    InfrastructureAssessment,
    InfrastructureProject,
    Person,
    Reach,
    ReachCell,
    ReachMonthly,
    ReachResidence,
    RegisteredCell,
    ReportingPeriod,
    TrainingEnrolment,
    TrainingFollowUp,
)
from services.indicators.reach import COUNTS, PILLARS, UNKNOWN
from shared.bus import Bus
from shared.consumer import CONSUMER_TABLES, ProcessedEvent
from shared.db import utcnow
from shared.events import AGE_GROUPS
from shared.rebuild import RebuildStats, rebuild_projection


def _in(column: Any, governorates: frozenset[str] | None) -> Any:
    return column.in_(governorates) if governorates is not None else true()


async def summary(*, session: AsyncSession, governorates: frozenset[str] | None,
                  today: date | None = None) -> dict[str, Any]:
    """Headline figures, restricted to ``governorates`` (None for the whole programme), with the logframe's
    targets (target, actual, percent achieved) and the adjustments late events made to frozen periods."""
    registered = (await session.execute(
        select(func.coalesce(func.sum(RegisteredCell.people), 0))
        .where(_in(RegisteredCell.governorate_pcode, governorates)))).scalar_one()

    # One row per person in the reach ledger (merges applied), placed where first assisted: the counts table.
    directly_assisted = (await session.execute(
        select(func.coalesce(func.sum(ReachCell.people), 0))
        .where(_in(ReachCell.governorate_pcode, governorates)))).scalar_one()

    completed = (select(InfrastructureProject.community_id, InfrastructureProject.catchment_population)
                 .where(InfrastructureProject.completed_on.is_not(None),  # type: ignore[union-attr]
                        _in(InfrastructureProject.governorate_pcode, governorates))
                 .subquery())
    infrastructure = (await session.execute(
        select(func.coalesce(func.sum(completed.c.catchment_population), 0)))).scalar_one()

    # The contract's communities reached: where a directly assisted person lives (the record that now stands for
    # them, once registered; scoped by where they live) or where a project was completed. Residences are counted
    # per community as the reach ledger changes (``ReachResidence``): a small table, not reach joined to persons.
    residents = select(ReachResidence.community_id).where(_in(ReachResidence.governorate_pcode, governorates))
    reached = union(residents, select(completed.c.community_id)).subquery()
    communities = (await session.execute(select(func.count()).select_from(reached))).scalar_one()

    trainings_completed, share_employed = await _training_figures(session, governorates)
    last_applied = (await session.execute(select(func.max(ProcessedEvent.processed_at)))).scalar_one()
    targets, adjustments = await logframe(session=session, governorates=governorates, today=today)
    return {
        **await grant_figures(session=session, governorates=governorates),
        **await feedback_figures(session=session, governorates=governorates),
        **await infrastructure_figures(session=session, governorates=governorates),
        "individuals_directly_assisted": int(directly_assisted),
        "individuals_benefiting_from_infrastructure": int(infrastructure),
        "communities_reached": int(communities),
        "beneficiaries_registered": int(registered),
        "trainings_completed": trainings_completed,
        "share_employed_at_follow_up": share_employed,
        "targets": targets,
        "adjustments": adjustments,
        "as_of": last_applied or utcnow(),
    }


EMPLOYED = ("employed", "self_employed")


async def _training_figures(session: AsyncSession, governorates: frozenset[str] | None) -> tuple[int, float | None]:
    """``trainings_completed``: completed enrolments in courses of ``governorates`` (a person completing two
    courses counts twice here; ``individuals_directly_assisted`` counts people).

    ``share_employed_at_follow_up``: over those completed enrolments that have at least one employment
    follow-up, the share whose latest follow-up (6 months over 3) says employed or self-employed; rounded to
    4 decimals; null while none has been followed up."""
    completed = (select(TrainingEnrolment.enrolment_id)
                 .where(TrainingEnrolment.completed_on.is_not(None),  # type: ignore[union-attr]
                        _in(TrainingEnrolment.governorate_pcode, governorates)))
    count = (await session.execute(select(func.count()).select_from(completed.subquery()))).scalar_one()
    latest: dict[str, tuple[int, str]] = {}
    rows = await session.execute(select(TrainingFollowUp.enrolment_id, TrainingFollowUp.months_after,
                                        TrainingFollowUp.employment_status)
                                 .where(TrainingFollowUp.enrolment_id.in_(completed)))  # type: ignore[attr-defined]
    for enrolment_id, months_after, status in rows.all():
        if enrolment_id not in latest or months_after > latest[enrolment_id][0]:
            latest[enrolment_id] = (months_after, status)
    share = (round(sum(1 for _, status in latest.values() if status in EMPLOYED) / len(latest), 4)
             if latest else None)
    return int(count), share
async def grant_figures(*, session: AsyncSession, governorates: frozenset[str] | None) -> dict[str, Any]:
    """Grants: those with at least one disbursement not reversed, and the amounts disbursed (reversals
    excluded) per currency; approved applications (latest decision); businesses whose latest monitoring
    visit found them operating."""
    paid = (GrantDisbursement.reversed.is_(False),  # type: ignore[attr-defined]
            _in(GrantDisbursement.governorate_pcode, governorates))
    grants_disbursed = (await session.execute(
        select(func.count(func.distinct(GrantDisbursement.grant_id))).where(*paid))).scalar_one()
    amounts = (await session.execute(select(GrantDisbursement.currency, func.sum(GrantDisbursement.amount))
                                     .where(*paid).group_by(GrantDisbursement.currency))).all()
    approved = (await session.execute(select(func.count()).select_from(GrantApplication).where(
        GrantApplication.status == "approved", _in(GrantApplication.governorate_pcode, governorates)))).scalar_one()
    latest = (select(GrantMonitoring.grant_id, GrantMonitoring.business_operating,
                     func.row_number().over(partition_by=GrantMonitoring.grant_id,
                                            order_by=(GrantMonitoring.visited_on.desc(),  # type: ignore[attr-defined]
                                                      GrantMonitoring.visit_id.desc())).label("n"))  # type: ignore[attr-defined]
              .where(_in(GrantMonitoring.governorate_pcode, governorates)).subquery())
    operating = (await session.execute(select(func.count()).select_from(latest).where(
        latest.c.n == 1, latest.c.business_operating.is_(True)))).scalar_one()
    return {
        "grants_disbursed": int(grants_disbursed),
        "grant_amounts_disbursed": {currency: float(total) for currency, total in sorted(amounts)},
        "grants_approved": int(approved),
        "grant_businesses_operating": int(operating),
    }


SENSITIVE_FEEDBACK = ("sea", "fraud_corruption", "staff_misconduct")


async def feedback_figures(*, session: AsyncSession, governorates: frozenset[str] | None) -> dict[str, Any]:
    """Feedback and community engagement: cases received, by category (the sensitive categories only as one
    ``sensitive`` bucket), the share resolved within their service levels, active resource centres, people
    taking part in community activities, and communities with a reconciliation activity. A case taken without a
    place counts only in the programme-wide figures."""
    where = _in(FeedbackCase.governorate_pcode, governorates)
    by_category = (await session.execute(select(FeedbackCase.category, func.count()).where(where)
                                         .group_by(FeedbackCase.category))).all()
    buckets: dict[str, int] = {}
    for category, n in by_category:
        key = "sensitive" if category in SENSITIVE_FEEDBACK else category
        buckets[key] = buckets.get(key, 0) + int(n)
    met = (await session.execute(select(FeedbackCase.resolved_within_service_level, func.count()).where(
        where, FeedbackCase.resolved_within_service_level.is_not(None))  # type: ignore[union-attr]
        .group_by(FeedbackCase.resolved_within_service_level))).all()
    resolved = sum(int(n) for _, n in met)
    within = sum(int(n) for flag, n in met if flag)
    centres = (await session.execute(select(func.count()).select_from(FeedbackResourceCentre).where(
        FeedbackResourceCentre.active.is_(True),  # type: ignore[attr-defined]
        _in(FeedbackResourceCentre.governorate_pcode, governorates)))).scalar_one()
    in_scope = _in(CommunityActivityFact.governorate_pcode, governorates)
    participants = (await session.execute(select(func.coalesce(func.sum(CommunityActivityFact.participants_total), 0))
                                          .where(in_scope))).scalar_one()
    reconciled = (await session.execute(select(func.count(func.distinct(CommunityActivityFact.community_id))).where(
        in_scope, CommunityActivityFact.kind == "reconciliation"))).scalar_one()
    return {
        "feedback_received": sum(buckets.values()),
        "feedback_received_by_category": dict(sorted(buckets.items())),
        "share_feedback_resolved_within_service_levels": round(within / resolved, 4) if resolved else None,
        "resource_centres_active": int(centres),
        "community_activity_participants": int(participants),
        "communities_with_reconciliation_activity": int(reconciled),
    }


async def infrastructure_figures(*, session: AsyncSession, governorates: frozenset[str] | None) -> dict[str, Any]:
    """Infrastructure, scoped by the project's (or assessment's) governorate: projects that reached ``completed``
    (handed over included), in all and per sector; communities with a completed participatory assessment; and an
    estimate of the distinct people benefiting, which does not add up overlapping catchments: projects in one
    community largely serve the same residents (the rehabilitated school and the water network), so each
    community contributes its largest completed catchment once. It is a lower-bound estimate beside the contract's
    ``individuals_benefiting_from_infrastructure`` (the plain sum)."""
    completed = (InfrastructureProject.completed_on.is_not(None),  # type: ignore[union-attr]
                 _in(InfrastructureProject.governorate_pcode, governorates))
    by_sector = dict((await session.execute(
        select(InfrastructureProject.sector, func.count()).where(*completed)
        .group_by(InfrastructureProject.sector))).all())
    largest = (select(func.max(InfrastructureProject.catchment_population).label("catchment")).where(*completed)
               .group_by(InfrastructureProject.community_id).subquery())
    estimate = (await session.execute(select(func.coalesce(func.sum(largest.c.catchment), 0)))).scalar_one()
    assessed = (await session.execute(
        select(func.count(func.distinct(InfrastructureAssessment.community_id)))
        .where(_in(InfrastructureAssessment.governorate_pcode, governorates)))).scalar_one()
    return {
        "projects_completed": int(sum(by_sector.values())),
        "projects_completed_by_sector": {sector: int(n) for sector, n in sorted(by_sector.items())},
        "communities_with_completed_assessment": int(assessed),
        "individuals_benefiting_from_infrastructure_estimate": int(estimate),
    }


# Everything a rebuild replaces: the projection and the consumer's own tables.
REBUILT_TABLES: tuple[type[SQLModel], ...] = (*PROJECTION_TABLES, *CONSUMER_TABLES)


async def rebuild(*, settings: IndicatorsSettings, bus: Bus, allow_empty: bool = False,
                  progress: Callable[[RebuildStats], object] | None = None) -> RebuildStats:
    """Replay the whole stream into a projection built aside, then swap it in (see ``shared.rebuild``): folded in
    memory and written in bulk (``services.indicators.replay``), or through the live handlers when
    ``rebuild_in_memory`` is off.

    Raises ``RebuildError`` with the live projection untouched when it stalls or is refused.
    """
    from services.indicators.app import service  # the declaration imports this module
    from services.indicators.replay import IndicatorsReplay

    applier = service.applier()
    return await rebuild_projection(
        settings=settings, bus=bus, applier=applier, tables=REBUILT_TABLES, migrate=service.migrate,
        allow_empty=allow_empty, stall_seconds=settings.rebuild_stall_seconds,
        batch_size=settings.rebuild_batch_size or (5000 if settings.rebuild_in_memory else 200), progress=progress,
        replay=(lambda: IndicatorsReplay(applier.handlers)) if settings.rebuild_in_memory else None)


# -- breakdowns ------------------------------------------------------------------------------------
DIMENSIONS = ("sex", "age_group", "displacement_status", "disability", "governorate", "district", "community",
              "pillar", "month")
PERSON_INDICATORS = ("beneficiaries_registered", "individuals_directly_assisted")
MAX_DIMENSIONS = 3
# The column of each dimension in the reach ledger (``Reach``, and ``ReachCell`` for the low-cardinality ones).
_REACH_COLUMN = {"governorate": "governorate_pcode", "district": "district_pcode", "community": "community_id"}
# ... and among registered people (``Person``): age and month at registration; no pillar.
_PERSON_COLUMN = {"sex": "sex", "age_group": "registered_age_group", "displacement_status": "displacement_status",
                  "governorate": "governorate_pcode", "district": "district_pcode", "community": "community_id",
                  "month": "registered_month"}


class BreakdownError(ValueError):
    """A breakdown that cannot be made (a dimension the indicator does not have)."""


def _month_end(day: date) -> bool:
    return (day + timedelta(days=1)).day == 1


async def breakdown(*, session: AsyncSession, indicator: str, by: Sequence[str],
                    governorates: frozenset[str] | None, from_: date | None = None,
                    to: date | None = None) -> list[dict[str, Any]]:
    """A person indicator counted per combination of ``by`` dimensions, in the database (GROUP BY).

    ``individuals_directly_assisted``: each person once, described at their first assistance (month, pillar,
    place where it was given, age then); ``from_``/``to`` keep the people first assisted in that window.
    ``beneficiaries_registered``: registered people (merges applied) at registration (month, age then, where
    they live); ``from_``/``to`` keep those registered in that window. A value not known yet is ``unknown``,
    so the cells always sum to the indicator's total for the same scope and window.
    """
    if indicator == "individuals_directly_assisted":
        table: Any = _counts_table(by, from_, to)
        columns = [getattr(table, _REACH_COLUMN.get(d, d)) for d in by]
        value = func.count() if table is Reach else func.sum(table.people)
        conditions = [_in(table.governorate_pcode, governorates)]
        if table is ReachMonthly:
            if from_ is not None:
                conditions.append(ReachMonthly.month >= from_.strftime("%Y-%m"))
            if to is not None:
                conditions.append(ReachMonthly.month <= to.strftime("%Y-%m"))
        elif table is Reach:
            if from_ is not None:
                conditions.append(Reach.first_on >= from_)
            if to is not None:
                conditions.append(Reach.first_on <= to)
    elif indicator == "beneficiaries_registered":
        if "pillar" in by:
            raise BreakdownError("registered people have no pillar: break down individuals_directly_assisted")
        aligned = (from_ is None or from_.day == 1) and (to is None or _month_end(to))
        if aligned and set(by) <= {"sex", "age_group", "displacement_status", "disability", "governorate", "month"}:
            table, value = RegisteredCell, func.sum(RegisteredCell.people)
            columns = [getattr(RegisteredCell, _REACH_COLUMN.get(d, d)) for d in by]
            conditions = [_in(RegisteredCell.governorate_pcode, governorates)]
            if from_ is not None:
                conditions.append(RegisteredCell.month >= from_.strftime("%Y-%m"))
            if to is not None:
                conditions.append(RegisteredCell.month <= to.strftime("%Y-%m"))
            return await _grouped(session, table, columns, value, conditions, by)
        table, value = Person, func.count()
        columns = [_person_dimension(d) for d in by]
        conditions = [Person.registered.is_(True), Person.merged_into_id.is_(None),  # type: ignore[attr-defined,union-attr]
                      _in(Person.governorate_pcode, governorates)]
        if from_ is not None:
            conditions.append(Person.registered_at >= datetime.combine(from_, time.min, UTC))  # type: ignore[operator]
        if to is not None:
            conditions.append(Person.registered_at < datetime.combine(to + timedelta(days=1), time.min, UTC))  # type: ignore[operator]
    else:
        raise BreakdownError(f"no breakdown of {indicator}")
    return await _grouped(session, table, columns, value, conditions, by)


async def _grouped(session: AsyncSession, table: Any, columns: list[Any], value: Any, conditions: list[Any],
                   by: Sequence[str]) -> list[dict[str, Any]]:
    labelled = [column.label(d) for column, d in zip(columns, by, strict=True)]
    rows = (await session.execute(select(*labelled, value.label("value")).select_from(table).where(*conditions)
                                  .group_by(*labelled).order_by(*labelled))).all()
    return [{**{d: str(getattr(row, d)) for d in by}, "value": int(row.value)} for row in rows if row.value]


def _counts_table(by: Sequence[str], from_: date | None, to: date | None) -> Any:
    """The smallest table that answers: a counts table when it has every dimension asked (and the window, if
    any, is whole months), else the ledger's rows."""
    needed = {_REACH_COLUMN.get(d, d) for d in by}
    if from_ is None and to is None and needed <= set(COUNTS[0][1]):
        return ReachCell
    aligned = (from_ is None or from_.day == 1) and (to is None or _month_end(to))
    if aligned and needed <= set(COUNTS[1][1]):
        return ReachMonthly
    return Reach


def _person_dimension(dimension: str) -> Any:
    if dimension == "disability":
        return case((Person.has_disability.is_(True), "yes"),  # type: ignore[union-attr]
                    (Person.has_disability.is_(False), "no"), else_=UNKNOWN)  # type: ignore[union-attr]
    return func.coalesce(getattr(Person, _PERSON_COLUMN[dimension]), UNKNOWN)


# -- public outputs: suppression -------------------------------------------------------------------
PUBLIC_DIMENSIONS = ("sex", "age_group", "displacement_status", "disability", "governorate", "pillar", "month")
_DOMAINS: dict[str, tuple[str, ...]] = {
    "sex": ("female", "male"),
    "age_group": AGE_GROUPS,
    "displacement_status": ("idp", "returnee", "host_community"),
    "disability": ("yes", "no"),
    "governorate": tuple(f"IQG{n:02d}" for n in range(1, 19)),
    "pillar": PILLARS,
}


def _months(first: str, last: str) -> list[str]:
    year, month = int(first[:4]), int(first[5:])
    months = []
    while f"{year:04d}-{month:02d}" <= last:
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def suppress(values: Sequence[int], threshold: int) -> tuple[set[int], bool]:
    """Which cells of a one-dimension table to hide, and whether to hide its total too.

    A total under ``threshold`` (and not zero) is hidden with every cell. Otherwise:

    - Zeros are shown: a group with nobody in it describes no one, and hiding it forces a large cell to be hidden
      with it (a table by sex with nobody of unknown sex would hide the men). So whoever reads the table knows
      that each hidden cell holds at least one person.
    - Primary: every cell from 1 to ``threshold - 1``. Complementary: the smallest other cells, until at least two
      are hidden and their sum ``H`` leaves each of the ``n`` hidden cells free to hold anything from 1 to
      ``H - (n - 1) >= threshold``: nothing shown or published elsewhere narrows a hidden cell to a small value.
    - A table that cannot be made so with its zeros shown (many cells of one or two people) hides its zeros too,
      as primary cells: then each hidden cell may hold anything from 0 to ``H >= threshold``.
    """
    total = sum(values)
    if total == 0:
        return set(), False
    if total < threshold:
        return set(range(len(values))), True

    def complete(hidden: set[int], floor: int) -> set[int] | None:
        def safe() -> bool:
            held = sum(values[j] for j in hidden) - floor * (len(hidden) - 1)
            return not hidden or (len(hidden) >= 2 and held >= threshold)

        for i in sorted(range(len(values)), key=lambda i: (values[i], i)):
            if safe():
                return hidden
            if i not in hidden and values[i] >= floor:
                hidden.add(i)
        return hidden if safe() else None

    shown_zeros = complete({i for i, v in enumerate(values) if 0 < v < threshold}, floor=1)
    if shown_zeros is not None:
        return shown_zeros, False
    hidden_zeros = complete({i for i, v in enumerate(values) if v < threshold}, floor=0)
    assert hidden_zeros is not None  # with the total at or over the threshold, hiding every cell is safe
    return hidden_zeros, False


async def public_breakdown(*, session: AsyncSession, indicator: str, dimension: str,
                           threshold: int) -> dict[str, Any]:
    """The whole programme's figure for ``indicator`` by one dimension, every value listed (zeros and
    ``unknown`` included) and suppressed by :func:`suppress`: ``{"items": [...], "total": n | None}``."""
    allowed = [d for d in PUBLIC_DIMENSIONS if d != "pillar" or indicator == "individuals_directly_assisted"]
    if dimension not in allowed:
        raise BreakdownError(f"the public breakdown of {indicator} is by one of {', '.join(allowed)}")
    counts = {item[dimension]: item["value"] for item in await breakdown(
        session=session, indicator=indicator, by=[dimension], governorates=None)}
    if dimension == "month":
        known = sorted(m for m in counts if m != UNKNOWN)
        domain = _months(known[0], known[-1]) if known else []
    else:
        domain = list(_DOMAINS[dimension])
    keys = [*domain, UNKNOWN]
    values = [counts.get(key, 0) for key in keys]
    hidden, total_hidden = suppress(values, threshold)
    items = [{dimension: key, "value": None, "suppressed": True} if i in hidden else {dimension: key, "value": value}
             for i, (key, value) in enumerate(zip(keys, values, strict=True))]
    return {"items": items, "total": None if total_hidden else sum(values)}


async def public_summary(*, session: AsyncSession, governorate: str | None, threshold: int) -> dict[str, Any]:
    """The public headline figures. People directly assisted are suppressed exactly as in the public breakdown
    by governorate (for one governorate) or as its total (for the whole programme), so no public output
    reveals what another hides."""
    figures = await summary(session=session, governorates=frozenset({governorate}) if governorate else None)
    table = await public_breakdown(session=session, indicator="individuals_directly_assisted",
                                   dimension="governorate", threshold=threshold)
    if governorate is None:
        shown = table["total"]
    else:
        shown = next(item["value"] for item in table["items"] if item["governorate"] == governorate)
    return {**figures, "individuals_directly_assisted": shown}


# -- targets and reporting periods (the logframe) ----------------------------------------------------
TARGET_INDICATORS = ("individuals_directly_assisted", "beneficiaries_registered", "trainings_completed",
                     "grants_disbursed", "individuals_benefiting_from_infrastructure")
ALL = "all"  # the scope of a programme-wide target or frozen figure


class PeriodNotFound(LookupError):
    pass


class PeriodFrozen(Exception):
    pass


class PeriodExists(Exception):
    pass


def _scope_set(scope: str) -> frozenset[str] | None:
    return None if scope == ALL else frozenset({scope})


async def period_figures(*, session: AsyncSession, governorates: frozenset[str] | None, starts_on: date,
                         ends_on: date) -> dict[str, int]:
    """What each target indicator counts within a period: people first assisted in it, people registered in
    it, trainings completed, grants with a disbursement (not reversed) and infrastructure catchment completed."""
    assisted = sum(item["value"] for item in await breakdown(
        session=session, indicator="individuals_directly_assisted", by=["governorate"], governorates=governorates,
        from_=starts_on, to=ends_on))
    registered = sum(item["value"] for item in await breakdown(
        session=session, indicator="beneficiaries_registered", by=["governorate"], governorates=governorates,
        from_=starts_on, to=ends_on))
    trainings = (await session.execute(select(func.count()).select_from(TrainingEnrolment).where(
        _in(TrainingEnrolment.governorate_pcode, governorates),
        TrainingEnrolment.completed_on >= starts_on, TrainingEnrolment.completed_on <= ends_on))).scalar_one()  # type: ignore[operator]
    grants = (await session.execute(select(func.count(func.distinct(GrantDisbursement.grant_id))).where(
        GrantDisbursement.reversed.is_(False), _in(GrantDisbursement.governorate_pcode, governorates),  # type: ignore[attr-defined]
        GrantDisbursement.disbursed_on >= starts_on, GrantDisbursement.disbursed_on <= ends_on))).scalar_one()
    infrastructure = (await session.execute(
        select(func.coalesce(func.sum(InfrastructureProject.catchment_population), 0))
        .where(_in(InfrastructureProject.governorate_pcode, governorates),
               InfrastructureProject.completed_on >= starts_on,  # type: ignore[operator]
               InfrastructureProject.completed_on <= ends_on))).scalar_one()  # type: ignore[operator]
    return {"individuals_directly_assisted": int(assisted), "beneficiaries_registered": int(registered),
            "trainings_completed": int(trainings), "grants_disbursed": int(grants),
            "individuals_benefiting_from_infrastructure": int(infrastructure)}


async def list_periods(*, session: AsyncSession) -> list[ReportingPeriod]:
    return list((await session.execute(select(ReportingPeriod).order_by(ReportingPeriod.starts_on,
                                                                        ReportingPeriod.code))).scalars())


async def create_period(*, session: AsyncSession, code: str, starts_on: date, ends_on: date) -> ReportingPeriod:
    """A new reporting period; PeriodExists when the code is taken (the primary key decides, atomically)."""
    period = ReportingPeriod(code=code, starts_on=starts_on, ends_on=ends_on)
    try:
        async with session.begin_nested():
            session.add(period)
            await session.flush()
    except IntegrityError:
        raise PeriodExists(code) from None
    return period


async def freeze_period(*, session: AsyncSession, code: str, by: str) -> ReportingPeriod:
    """Freeze a period: store its figures for the programme and every governorate; they never change after.

    The conditional UPDATE is the check: of two concurrent freezes one stores the figures, the other gets
    PeriodFrozen."""
    now = utcnow()
    result = await session.execute(update(ReportingPeriod)
                                   .where(ReportingPeriod.code == code, ReportingPeriod.frozen_at.is_(None))  # type: ignore[union-attr]
                                   .values(frozen_at=now, frozen_by=by))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        if await session.get(ReportingPeriod, code) is None:
            raise PeriodNotFound(code)
        raise PeriodFrozen(code)
    period = await session.get(ReportingPeriod, code, populate_existing=True)
    assert period is not None
    for scope in (ALL, *_DOMAINS["governorate"]):
        figures = await period_figures(session=session, governorates=_scope_set(scope), starts_on=period.starts_on,
                                       ends_on=period.ends_on)
        session.add_all(FrozenFigure(period_code=code, indicator=indicator, scope=scope, value=value)
                        for indicator, value in figures.items())
    await session.flush()
    return period


async def set_target(*, session: AsyncSession, indicator: str, period_code: str, governorate: str | None,
                     target: int, by: str) -> IndicatorTarget:
    """Set (or replace) a target. The period row is locked first, so a concurrent freeze either happens
    before (PeriodFrozen) or after; the write is one upsert on (indicator, period, scope)."""
    period = (await session.execute(select(ReportingPeriod).where(ReportingPeriod.code == period_code)
                                    .with_for_update())).scalars().first()
    if period is None:
        raise PeriodNotFound(period_code)
    if period.frozen_at is not None:
        raise PeriodFrozen(period_code)
    scope = governorate or ALL
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    values = dict(indicator=indicator, period_code=period_code, scope=scope, target=target, set_by=by,
                  set_at=utcnow())
    await session.execute(insert(IndicatorTarget).values(**values).on_conflict_do_update(
        index_elements=["indicator", "period_code", "scope"], set_={"target": target, "set_by": by,
                                                                    "set_at": values["set_at"]}))
    row = (await session.execute(select(IndicatorTarget).where(
        IndicatorTarget.indicator == indicator, IndicatorTarget.period_code == period_code,
        IndicatorTarget.scope == scope).execution_options(populate_existing=True))).scalars().one()
    return row


def _visible(scope: str, governorates: frozenset[str] | None) -> bool:
    return governorates is None or scope in governorates


def current_period(periods: Sequence[ReportingPeriod], today: date) -> ReportingPeriod | None:
    """Where late events count: the open period containing today (the latest-starting one), else the
    latest-starting open period."""
    open_ = [p for p in periods if p.frozen_at is None]
    containing = [p for p in open_ if p.starts_on <= today <= p.ends_on]
    candidates = containing or open_
    return max(candidates, key=lambda p: (p.starts_on, p.code)) if candidates else None


async def logframe(*, session: AsyncSession, governorates: frozenset[str] | None,
                   today: date | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Targets with their actuals, and the adjustments: how far a frozen period's figure, computed now, has
    moved from the one stored at its freezing (events that arrived late). A frozen period shows its stored
    figure; the current period's actual includes every adjustment of its indicator and scope."""
    today = today or utcnow().date()
    periods = await list_periods(session=session)
    by_code = {p.code: p for p in periods}
    frozen_rows = (await session.execute(select(FrozenFigure))).scalars().all()
    live: dict[tuple[str, str], dict[str, int]] = {}

    async def figures(code: str, scope: str) -> dict[str, int]:
        if (code, scope) not in live:
            p = by_code[code]
            live[code, scope] = await period_figures(session=session, governorates=_scope_set(scope),
                                                     starts_on=p.starts_on, ends_on=p.ends_on)
        return live[code, scope]

    targets = (await session.execute(select(IndicatorTarget).order_by(
        IndicatorTarget.period_code, IndicatorTarget.indicator, IndicatorTarget.scope))).scalars().all()
    scopes = {t.scope for t in targets if _visible(t.scope, governorates)}
    adjustments = []
    for row in sorted(frozen_rows, key=lambda r: (by_code[r.period_code].starts_on, r.period_code, r.indicator,
                                                  r.scope)):
        if row.scope not in scopes:
            continue  # only what a visible target needs (an adjustment is listed for its target's scope)
        now = (await figures(row.period_code, row.scope))[row.indicator]
        if now != row.value:
            adjustments.append({"period": row.period_code, "indicator": row.indicator,
                                "governorate": None if row.scope == ALL else row.scope,
                                "frozen_value": row.value, "value_now": now, "adjustment": now - row.value})
    current = current_period(periods, today)
    frozen = {(r.period_code, r.indicator, r.scope): r.value for r in frozen_rows}
    progress = []
    for t in targets:
        if not _visible(t.scope, governorates):
            continue
        period = by_code[t.period_code]
        if period.frozen_at is not None:
            actual = frozen[t.period_code, t.indicator, t.scope]
        else:
            actual = (await figures(t.period_code, t.scope))[t.indicator]
            if current is not None and period.code == current.code:
                actual += sum(a["adjustment"] for a in adjustments
                              if a["indicator"] == t.indicator and (a["governorate"] or ALL) == t.scope)
        progress.append({"indicator": t.indicator, "period": t.period_code,
                         "governorate": None if t.scope == ALL else t.scope, "target": t.target, "actual": actual,
                         "percent_achieved": round(100 * actual / t.target, 1) if t.target else None,
                         "frozen": period.frozen_at is not None})
    return progress, adjustments
