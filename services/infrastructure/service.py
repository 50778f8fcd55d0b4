"""Domain logic of the infrastructure service. Functions add and flush; the caller's session commits.

Every transition (an assessment's completion, a project's status change, a progress update) reads the row,
checks the state it read and writes it back with a version-checked UPDATE (``shared.concurrency``): the
loser of a race gets 409 and its event is never committed, so a transition raced twice happens once.
"""

from __future__ import annotations

import operator
import uuid
from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.infrastructure.models import (
    AssessmentPriority,
    CommunityAssessment,
    InfrastructureProject,
    ProjectProgress,
)
from services.infrastructure.schemas import (
    AssessmentCompletion,
    AssessmentCreate,
    AssessmentPublic,
    Catchment,
    ConflictSensitivity,
    PriorityPublic,
    ProgressCreate,
    ProjectCreate,
    ProjectPublic,
    StatusChange,
)
from shared.audit import audit
from shared.auth import Principal
from shared.db import Reads, utcnow
from shared.errors import Conflict, Unprocessable
from shared.events.infrastructure import (
    AssessmentCompleted,
    ProjectCreated,
    ProjectHandedOver,
    ProjectProgressRecorded,
    ProjectStatusChanged,
)
from shared.outbox import Outbox
from shared.peers import Beneficiaries
from shared.scope import Conditions, get_in_scope, list_in_scope, read_in_scope, select_filtered

# planned -> in_progress -> completed -> handed_over; cancelled from planned or in_progress. Anything else 409.
TRANSITIONS: dict[str, frozenset[str]] = {
    "planned": frozenset({"in_progress", "cancelled"}),
    "in_progress": frozenset({"completed", "cancelled"}),
    "completed": frozenset({"handed_over"}),
    "handed_over": frozenset(),
    "cancelled": frozenset(),
}
SENSITIVE_READERS = frozenset({"programme_manager", "me_officer", "admin"})
CATCHMENT_FIELDS = ("female", "male", "idp", "returnee", "host_community")


def _field_error(loc: list[Any], msg: str) -> Unprocessable:
    return Unprocessable(msg, errors=[{"loc": ["body", *loc], "msg": msg}])


# -- community assessments --------------------------------------------------------------------------
async def create_assessment(*, session: AsyncSession, principal: Principal, peers: Beneficiaries,
                            data: AssessmentCreate) -> CommunityAssessment:
    """A draft assessment of a community the caller may see (asked of the beneficiaries service: 422 when unknown
    or out of scope, 503 when it cannot be reached). Its priorities are ranked in the order given."""
    community = await peers.community(data.community_id)
    cs = data.conflict_sensitivity
    p = data.participants
    assessment = CommunityAssessment(
        community_id=community.id, district_pcode=community.district_pcode,
        governorate_pcode=community.governorate_pcode, assessed_on=data.assessed_on, status="draft",
        participants_female=p.female, participants_male=p.male, participants_idp=p.idp,
        participants_returnee=p.returnee, participants_host_community=p.host_community,
        local_authority=data.local_authority, contributions=[c.model_dump() for c in data.contributions],
        conflict_sensitivity={"groups_present": cs.groups_present, "dividers": cs.dividers,
                              "connectors": cs.connectors,
                              "risks": [{"id": str(uuid.uuid4()), **r.model_dump()} for r in cs.risks]})
    session.add(assessment)
    await session.flush()
    for rank, priority in enumerate(data.priorities, start=1):
        session.add(AssessmentPriority(assessment_id=assessment.id, rank=rank, sector=priority.sector,
                                       need=priority.need))
    audit(session, principal=principal, entity="community_assessment", entity_id=assessment.id, action="created",
          fields=data.model_fields_set)
    await session.flush()
    return assessment


async def get_assessment(*, session: AsyncSession, principal: Principal, assessment_id: str) -> CommunityAssessment:
    return await get_in_scope(session, CommunityAssessment, assessment_id, principal, label="community assessment")


def list_assessments_query(*, principal: Principal, community_id: str | None, governorate: str | None,
                           status: str | None, assessed_from: date | None, assessed_to: date | None) -> Select[Any]:
    stmt = select_filtered(CommunityAssessment, principal, community_id=community_id, governorate_pcode=governorate,
                           status=status)
    if assessed_from:
        stmt = stmt.where(CommunityAssessment.assessed_on >= assessed_from)
    if assessed_to:
        stmt = stmt.where(CommunityAssessment.assessed_on <= assessed_to)
    return stmt


async def _priorities(session: AsyncSession, assessment_ids: list[str]) -> dict[str, list[AssessmentPriority]]:
    found: dict[str, list[AssessmentPriority]] = {a: [] for a in assessment_ids}
    if assessment_ids:
        rows = (await session.execute(select(AssessmentPriority).where(
            AssessmentPriority.assessment_id.in_(assessment_ids))  # type: ignore[attr-defined]
            .order_by(AssessmentPriority.rank))).scalars()  # type: ignore[arg-type]
        for row in rows:
            found[row.assessment_id].append(row)
    return found


async def assessments_public(session: AsyncSession, principal: Principal,
                             rows: list[CommunityAssessment]) -> list[AssessmentPublic]:
    """Assessments as the caller may see them: the conflict-sensitivity part only for programme managers, M&E
    officers and admins (who is in tension with whom is sensitive)."""
    priorities = await _priorities(session, [a.id for a in rows])
    sensitive = principal.has_any(SENSITIVE_READERS)
    return [AssessmentPublic(
        id=a.id, community_id=a.community_id, district_pcode=a.district_pcode, governorate_pcode=a.governorate_pcode,
        assessed_on=a.assessed_on, status=a.status,  # type: ignore[arg-type]
        completed_on=a.completed_on,
        participants={"female": a.participants_female, "male": a.participants_male, "idp": a.participants_idp,
                      "returnee": a.participants_returnee, "host_community": a.participants_host_community},
        local_authority=a.local_authority,
        priorities=[PriorityPublic.model_validate(p) for p in priorities[a.id]],
        contributions=a.contributions,
        conflict_sensitivity=ConflictSensitivity.model_validate(a.conflict_sensitivity) if sensitive else None,
        version=a.version, created_at=a.created_at) for a in rows]


async def complete_assessment(*, session: AsyncSession, outbox: Outbox, principal: Principal, assessment_id: str,
                              data: AssessmentCompletion) -> CommunityAssessment:
    """Complete a draft assessment (once: again is 409). Its priorities can then be answered by projects."""
    assessment = await get_assessment(session=session, principal=principal, assessment_id=assessment_id)
    if assessment.status != "draft":
        raise Conflict("The assessment is already completed", slug="invalid-transition")
    if data.completed_on < assessment.assessed_on:
        raise _field_error(["completed_on"], "an assessment cannot be completed before it was held")
    assessment.status, assessment.completed_on, assessment.updated_at = "completed", data.completed_on, utcnow()
    audit(session, principal=principal, entity="community_assessment", entity_id=assessment.id, action="completed",
          fields=data.model_fields_set)
    await session.flush()
    priorities = (await _priorities(session, [assessment.id]))[assessment.id]
    outbox.emit(session, AssessmentCompleted(
        assessment_id=assessment.id, community_id=assessment.community_id,
        district_pcode=assessment.district_pcode, governorate_pcode=assessment.governorate_pcode,
        assessed_on=assessment.assessed_on, completed_on=data.completed_on,
        participants_female=assessment.participants_female, participants_male=assessment.participants_male,
        participants_idp=assessment.participants_idp, participants_returnee=assessment.participants_returnee,
        participants_host_community=assessment.participants_host_community,
        local_authority_participated=assessment.local_authority is not None,
        priority_sectors=[p.sector for p in priorities],  # type: ignore[misc]
        risks_identified=len(assessment.conflict_sensitivity.get("risks", []))), subject_id=assessment.id)
    return assessment


# -- projects ---------------------------------------------------------------------------------------
def project_public(project: InfrastructureProject) -> ProjectPublic:
    breakdown = {name: getattr(project, f"catchment_{name}") for name in CATCHMENT_FIELDS}
    catchment = Catchment(**breakdown) if any(v is not None for v in breakdown.values()) else None
    fields = {name: getattr(project, name) for name in ProjectPublic.model_fields if name != "catchment"}
    return ProjectPublic(**fields, catchment=catchment)


def _snapshot(project: InfrastructureProject) -> dict[str, Any]:
    return dict(
        project_id=project.id, revision=project.version, status=project.status, sector=project.sector,
        community_id=project.community_id, district_pcode=project.district_pcode,
        governorate_pcode=project.governorate_pcode, assessment_id=project.assessment_id,
        answers_priority=project.assessment_priority_id is not None, priority_rank=project.priority_rank,
        catchment_population=project.catchment_population,
        **{f"catchment_{name}": getattr(project, f"catchment_{name}") for name in CATCHMENT_FIELDS},
        progress_percent=project.progress_percent, planned_start=project.planned_start,
        planned_end=project.planned_end, started_on=project.started_on, completed_on=project.completed_on,
        handed_over_on=project.handed_over_on, cancelled_on=project.cancelled_on,
        risks_to_mitigate=len(project.risks_to_mitigate))


async def _answered_priority(session: AsyncSession, data: ProjectCreate, community_id: str,
                             ) -> tuple[CommunityAssessment | None, AssessmentPriority | None]:
    """The completed assessment and priority the project answers, checked: the priority must exist, belong to a
    completed assessment of the same community (else 422); without one, a justification is required (422)."""
    if data.assessment_priority_id is None:
        if data.justification is None:
            raise _field_error(["justification"], "a project that answers no assessed priority of its community "
                                                  "needs a justification")
        if data.risks_to_mitigate:
            raise _field_error(["risks_to_mitigate"], "risks come from the answered assessment; name a priority")
        return None, None
    priority = await session.get(AssessmentPriority, data.assessment_priority_id)
    assessment = await session.get(CommunityAssessment, priority.assessment_id) if priority else None
    if priority is None or assessment is None or assessment.community_id != community_id:
        raise _field_error(["assessment_priority_id"], "not a priority of an assessment of this community")
    if assessment.status != "completed":
        raise _field_error(["assessment_priority_id"], "the assessment is not completed yet")
    if priority.sector != data.sector:
        raise _field_error(["sector"], f"the answered priority is a {priority.sector} need")
    risk_ids = {r["id"] for r in assessment.conflict_sensitivity.get("risks", [])}
    unknown = [i for i, risk in enumerate(data.risks_to_mitigate) if risk not in risk_ids]
    if unknown:
        raise Unprocessable("Some risks are not risks of the answered assessment", errors=[
            {"loc": ["body", "risks_to_mitigate", i], "msg": "not a risk of the answered assessment"} for i in unknown])
    return assessment, priority


async def create_project(*, session: AsyncSession, outbox: Outbox, principal: Principal, peers: Beneficiaries,
                         data: ProjectCreate) -> InfrastructureProject:
    """A planned project in a community the caller may see (422 unknown or out of scope, 503 unreachable),
    answering an assessed priority of that community or justified without one."""
    community = await peers.community(data.community_id)
    assessment, priority = await _answered_priority(session, data, community.id)
    catchment = data.catchment.model_dump() if data.catchment else {}
    project = InfrastructureProject(
        title=data.title, sector=data.sector, community_id=community.id, district_pcode=community.district_pcode,
        governorate_pcode=community.governorate_pcode, assessment_id=assessment.id if assessment else None,
        assessment_priority_id=priority.id if priority else None, priority_rank=priority.rank if priority else None,
        justification=data.justification, budget=data.budget, currency=data.currency,
        community_contribution=data.community_contribution, contractor=data.contractor,
        planned_start=data.planned_start, planned_end=data.planned_end, latitude=data.latitude,
        longitude=data.longitude, catchment_population=data.catchment_population,
        **{f"catchment_{name}": catchment.get(name) for name in CATCHMENT_FIELDS},
        risks_to_mitigate=list(dict.fromkeys(data.risks_to_mitigate)), status="planned")
    session.add(project)
    audit(session, principal=principal, entity="infrastructure_project", entity_id=project.id, action="created",
          fields=data.model_fields_set)
    await session.flush()
    outbox.emit(session, ProjectCreated(**_snapshot(project)), subject_id=project.id)
    return project


async def get_project(*, session: AsyncSession, principal: Principal, project_id: str) -> InfrastructureProject:
    return await get_in_scope(session, InfrastructureProject, project_id, principal, label="infrastructure project")


async def read_project(*, reads: Reads, principal: Principal, project_id: str) -> Any:
    """``get_project`` for a request that only shows it: a read-only row (``project_public`` renders it)."""
    return await read_in_scope(reads, InfrastructureProject, project_id, principal, label="infrastructure project")


_PROJECT = InfrastructureProject.__table__.c  # type: ignore[attr-defined]
_PROJECT_FILTERS: Conditions = {
    "sector": _PROJECT.sector, "status": _PROJECT.status, "community_id": _PROJECT.community_id,
    "governorate": _PROJECT.governorate_pcode, "district": _PROJECT.district_pcode,
    "started_from": (_PROJECT.started_on, operator.ge), "started_to": (_PROJECT.started_on, operator.le),
    "completed_from": (_PROJECT.completed_on, operator.ge), "completed_to": (_PROJECT.completed_on, operator.le)}


def list_projects_query(*, principal: Principal, sector: str | None, status: str | None, community_id: str | None,
                        governorate: str | None, district: str | None, started_from: date | None,
                        started_to: date | None, completed_from: date | None,
                        completed_to: date | None) -> tuple[Select[Any], dict[str, Any]]:
    """Projects in the caller's governorates: the statement (built once per combination of filters) and its
    values."""
    return list_in_scope(InfrastructureProject, principal, _PROJECT_FILTERS, bound=dict(
        sector=sector, status=status, community_id=community_id, governorate=governorate, district=district,
        started_from=started_from, started_to=started_to, completed_from=completed_from, completed_to=completed_to))


def _last_date(project: InfrastructureProject) -> date | None:
    dates = [d for d in (project.started_on, project.completed_on, project.handed_over_on) if d]
    return max(dates) if dates else None


async def change_status(*, session: AsyncSession, outbox: Outbox, principal: Principal, project_id: str,
                        data: StatusChange) -> InfrastructureProject:
    """Move a project along its lifecycle, dated: planned -> in_progress -> completed -> handed_over, cancelled
    from planned or in_progress; anything else 409. A handover names the authority; a cancellation gives a
    reason (422 without). A date before the previous transition is 422."""
    project = await get_project(session=session, principal=principal, project_id=project_id)
    previous = project.status
    if data.status not in TRANSITIONS[previous]:
        raise Conflict(f"A {previous} project cannot become {data.status}", slug="invalid-transition",
                       status_from=previous, status_to=data.status)
    if data.status == "handed_over" and data.authority is None:
        raise _field_error(["authority"], "a handover names the authority that will run the infrastructure")
    if data.status == "cancelled" and data.reason is None:
        raise _field_error(["reason"], "a cancellation needs a reason")
    last = _last_date(project)
    if last and data.on < last:
        raise _field_error(["on"], f"the project's previous transition was on {last.isoformat()}")
    project.status, project.updated_at = data.status, utcnow()
    match data.status:
        case "in_progress":
            project.started_on = data.on
        case "completed":
            project.completed_on, project.progress_percent = data.on, 100
        case "handed_over":
            project.handed_over_on, project.handover_authority = data.on, data.authority
        case "cancelled":
            project.cancelled_on, project.cancellation_reason = data.on, data.reason
    audit(session, principal=principal, entity="infrastructure_project", entity_id=project.id, action=data.status,
          fields=data.model_fields_set)
    await session.flush()  # the version-checked UPDATE: the loser of a race stops here (409), with no event
    event = ProjectHandedOver if data.status == "handed_over" else ProjectStatusChanged
    outbox.emit(session, event(**_snapshot(project), previous_status=previous, changed_on=data.on),  # type: ignore[arg-type]
                subject_id=project.id)
    return project


async def record_progress(*, session: AsyncSession, outbox: Outbox, principal: Principal, project_id: str,
                          data: ProgressCreate) -> ProjectProgress:
    """A progress update of an ongoing project (409 unless ``in_progress``), kept as history; the project shows
    the latest one reported."""
    project = await get_project(session=session, principal=principal, project_id=project_id)
    if project.status != "in_progress":
        raise Conflict(f"Progress is recorded for projects in progress, not {project.status} ones",
                       slug="invalid-transition")
    if project.started_on and data.reported_on < project.started_on:
        raise _field_error(["reported_on"], "the project had not started on that date")
    latest = (await session.execute(select(ProjectProgress.reported_on).where(
        ProjectProgress.project_id == project.id).order_by(ProjectProgress.reported_on.desc())  # type: ignore[attr-defined]
        .limit(1))).scalar_one_or_none()
    progress = ProjectProgress(project_id=project.id, percent=data.percent, note=data.note,
                               reported_on=data.reported_on, recorded_by=principal.sub)
    session.add(progress)
    if latest is None or data.reported_on >= latest:  # a late report of an earlier date does not move it back
        project.progress_percent = data.percent
    project.updated_at = utcnow()  # the project's UPDATE is version-checked: concurrent updates conflict
    audit(session, principal=principal, entity="infrastructure_project", entity_id=project.id,
          action="progress_recorded", fields=data.model_fields_set)
    await session.flush()
    outbox.emit(session, ProjectProgressRecorded(**_snapshot(project), progress_id=progress.id,
                                                 reported_on=data.reported_on), subject_id=project.id)
    return progress


async def list_progress(*, session: AsyncSession, principal: Principal, project_id: str) -> list[ProjectProgress]:
    project = await get_project(session=session, principal=principal, project_id=project_id)
    return list((await session.execute(select(ProjectProgress).where(ProjectProgress.project_id == project.id)
                                       .order_by(ProjectProgress.reported_on,  # type: ignore[arg-type]
                                                 ProjectProgress.created_at))).scalars())


# -- GeoJSON ----------------------------------------------------------------------------------------
GEOJSON_PROPERTIES = ("title", "sector", "status", "community_id", "district_pcode", "governorate_pcode",
                      "catchment_population", "progress_percent", "started_on", "completed_on", "handed_over_on")


async def projects_geojson(*, session: AsyncSession, stmt: Select[Any], params: dict[str, Any],
                           limit: int) -> dict[str, Any]:
    """An RFC 7946 FeatureCollection of the located projects ``stmt`` selects: Point geometries with
    coordinates ``[longitude, latitude]`` (WGS 84), the feature ``id`` the project's."""
    stmt = stmt.where(InfrastructureProject.latitude.is_not(None),  # type: ignore[union-attr]
                      InfrastructureProject.longitude.is_not(None))  # type: ignore[union-attr]
    stmt = stmt.order_by(InfrastructureProject.created_at.desc(), InfrastructureProject.id.desc()).limit(limit)  # type: ignore[attr-defined]
    rows = (await session.execute(stmt, params)).scalars().all()
    features = []
    for p in rows:
        properties = {name: getattr(p, name) for name in GEOJSON_PROPERTIES}
        for name, value in properties.items():
            if isinstance(value, date):
                properties[name] = value.isoformat()
        features.append({"type": "Feature", "id": p.id,
                         "geometry": {"type": "Point", "coordinates": [p.longitude, p.latitude]},
                         "properties": properties})
    return {"type": "FeatureCollection", "features": features}
