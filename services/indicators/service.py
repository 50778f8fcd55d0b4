"""Indicator figures computed from the projections, and the rebuild from the stream."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import func, select, true, union
from sqlalchemy.orm import aliased
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators.config import IndicatorsSettings
from services.indicators.models import (
    PROJECTION_TABLES,
    Assistance,
    CommunityActivityFact,
    CommunityRef,
    FeedbackCase,
    FeedbackResourceCentre,
    GrantApplication,
    GrantDisbursement,
    GrantMonitoring,
    InfrastructureAssessment,
    InfrastructureProject,
    Person,
    TrainingEnrolment,
    TrainingFollowUp,
)
from shared.bus import Bus
from shared.consumer import CONSUMER_TABLES, ProcessedEvent
from shared.db import utcnow
from shared.events import age_group
from shared.rebuild import RebuildStats, rebuild_projection


def _in(column: Any, governorates: frozenset[str] | None) -> Any:
    return column.in_(governorates) if governorates is not None else true()


async def summary(*, session: AsyncSession, governorates: frozenset[str] | None) -> dict[str, Any]:
    """Headline figures, restricted to ``governorates`` (None for the whole programme)."""
    registered = (await session.execute(
        select(func.count()).select_from(Person).where(
            Person.registered.is_(True), Person.merged_into_id.is_(None),  # type: ignore[attr-defined,union-attr]
            _in(Person.governorate_pcode, governorates)))).scalar_one()

    # Direct assistance counts the person a record now stands for (merges applied).
    recipient = aliased(Person)
    survivor_id = func.coalesce(recipient.merged_into_id, Assistance.person_id)
    survivor = aliased(Person)
    assisted = (select(survivor_id.label("person_id"))
                .select_from(Assistance)
                .join(recipient, recipient.beneficiary_id == Assistance.person_id, isouter=True)
                .subquery())
    assisted_people = (select(assisted.c.person_id, survivor.community_id, survivor.governorate_pcode)
                       .distinct()
                       .join(survivor, survivor.beneficiary_id == assisted.c.person_id, isouter=True)
                       .where(_in(survivor.governorate_pcode, governorates))
                       .subquery())
    directly_assisted = (await session.execute(
        select(func.count()).select_from(assisted_people))).scalar_one()

    completed = (select(InfrastructureProject.community_id, InfrastructureProject.catchment_population)
                 .join(CommunityRef, CommunityRef.community_id == InfrastructureProject.community_id, isouter=True)
                 .where(InfrastructureProject.completed_on.is_not(None),  # type: ignore[union-attr]
                        _in(CommunityRef.governorate_pcode, governorates))
                 .subquery())
    infrastructure = (await session.execute(
        select(func.coalesce(func.sum(completed.c.catchment_population), 0)))).scalar_one()

    reached = union(
        select(assisted_people.c.community_id).where(assisted_people.c.community_id.is_not(None)),
        select(completed.c.community_id),
    ).subquery()
    communities = (await session.execute(select(func.count()).select_from(reached))).scalar_one()

    trainings_completed, share_employed = await _training_figures(session, governorates)
    last_applied = (await session.execute(select(func.max(ProcessedEvent.processed_at)))).scalar_one()
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
    """Replay the whole stream into a projection built aside, then swap it in (see ``shared.rebuild``).

    Raises ``RebuildError`` with the live projection untouched when it stalls or is refused.
    """
    from services.indicators.app import service  # the declaration imports this module

    return await rebuild_projection(
        settings=settings, bus=bus, applier=service.applier(), tables=REBUILT_TABLES, migrate=service.migrate,
        allow_empty=allow_empty, stall_seconds=settings.rebuild_stall_seconds,
        batch_size=settings.rebuild_batch_size, progress=progress)


DIMENSIONS = ("sex", "age_group", "displacement_status", "governorate", "district", "month")
PERSON_INDICATORS = ("beneficiaries_registered", "individuals_directly_assisted")


def _cell(person: Person, dimension: str, month: str | None, today: date) -> str | None:
    match dimension:
        case "sex":
            return person.sex
        case "age_group":
            return age_group(person.birth_year, today) if person.birth_year else None
        case "displacement_status":
            return person.displacement_status
        case "governorate":
            return person.governorate_pcode
        case "district":
            return person.district_pcode
        case "month":
            return month
    raise ValueError(dimension)


async def breakdown(*, session: AsyncSession, indicator: str, by: Sequence[str],
                    governorates: frozenset[str] | None) -> list[dict[str, Any]]:
    """A person indicator counted per combination of ``by`` dimensions (age at today's date).

    ``month`` is the month of registration, or of the first assistance for direct assistance.
    """
    people = (await session.execute(select(Person).where(
        Person.registered.is_(True), Person.merged_into_id.is_(None),  # type: ignore[attr-defined,union-attr]
        _in(Person.governorate_pcode, governorates)))).scalars().all()
    by_id = {p.beneficiary_id: p for p in people}
    months: dict[str, str | None] = {}
    if indicator == "beneficiaries_registered":
        months = {p.beneficiary_id: p.registered_at.strftime("%Y-%m") if p.registered_at else None for p in people}
    else:
        merged = dict((await session.execute(select(Person.beneficiary_id, Person.merged_into_id).where(
            Person.merged_into_id.is_not(None)))).all())  # type: ignore[union-attr]
        for person_id, on in (await session.execute(select(Assistance.person_id, Assistance.on))).all():
            survivor = merged.get(person_id, person_id)
            month = on.strftime("%Y-%m")
            if survivor in by_id and (survivor not in months or month < (months[survivor] or "")):
                months[survivor] = month
    today = utcnow().date()
    counts = Counter(tuple(_cell(by_id[pid], d, month, today) for d in by) for pid, month in months.items())
    return [{**dict(zip(by, key, strict=True)), "value": value}
            for key, value in sorted(counts.items(), key=lambda kv: tuple(str(v) for v in kv[0]))]
