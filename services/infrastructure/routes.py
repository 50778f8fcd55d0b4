"""HTTP routes of the infrastructure service: thin, the domain logic is in service.py.

Roles (``admin`` always passes):

- community assessments (create, complete), projects (create, status transitions: start, complete, hand over,
  cancel): ``programme_manager``;
- progress updates: ``programme_manager``, ``me_officer`` (monitoring) and ``partner_system`` (an implementing
  partner's system reporting from site); not ``case_worker``, whose work is with people, not sites;
- reading (lists, GeoJSON, progress history): ``programme_manager``, ``case_worker``, ``me_officer``,
  ``partner_system``, ``viewer``; an assessment's conflict-sensitivity part only ``programme_manager``,
  ``me_officer`` (and ``admin``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from services.infrastructure import service as svc
from services.infrastructure.models import CommunityAssessment, InfrastructureProject
from services.infrastructure.schemas import (
    AssessmentCompletion,
    AssessmentCreate,
    AssessmentPublic,
    ProgressCreate,
    ProgressPublic,
    ProjectCreate,
    ProjectPublic,
    StatusChange,
)
from shared.auth import Principal, require_roles
from shared.db import ReadsDep, SessionDep
from shared.etag import make_etag
from shared.events.infrastructure import ProjectStatus, Sector
from shared.idempotency import IdempotencyDep
from shared.outbox import OutboxDep
from shared.pagination import CursorQuery, LimitQuery, Page, paginate
from shared.peers import BeneficiariesDep
from shared.urls import public_url

Manager = require_roles("programme_manager")
Reporter = require_roles("programme_manager", "me_officer", "partner_system")
Reader = require_roles("programme_manager", "case_worker", "me_officer", "partner_system", "viewer")

UNAVAILABLE = {503: {"description": "The beneficiaries service cannot be reached; nothing was stored"}}
NOT_FOUND = {404: {"description": "No such record in your governorates"}}
TRANSITION = {409: {"description": "The current status does not allow it (`invalid-transition`), or it changed "
                                   "concurrently (`concurrent-change`)"}}

assessments = APIRouter(prefix="/api/v1/community-assessments", tags=["community assessments"])
projects = APIRouter(prefix="/api/v1/infrastructure-projects", tags=["infrastructure projects"])


def _etag(row: CommunityAssessment | InfrastructureProject | AssessmentPublic | ProjectPublic | Any) -> dict[str, str]:
    return {"ETag": make_etag(row.id, row.version)}


async def _one_assessment(session: Any, principal: Principal, assessment: CommunityAssessment) -> AssessmentPublic:
    return (await svc.assessments_public(session, principal, [assessment]))[0]


# -- community assessments --------------------------------------------------------------------------
@assessments.post("", status_code=201, response_model=AssessmentPublic, responses=UNAVAILABLE)
async def create_community_assessment(request: Request, body: AssessmentCreate, session: SessionDep,
                                      principal: Manager, peers: BeneficiariesDep,
                                      idem: IdempotencyDep) -> JSONResponse:
    """A participatory assessment of a community (a draft until completed): participants by sex and group, the
    local authority that took part, the ranked priority needs by sector, what the community can contribute, and
    its conflict-sensitivity part (groups present, dividers, connectors, risks a project could create, each risk
    with an `id`). The community is looked up in the beneficiaries service (unknown or out of scope 422)."""
    async def work() -> AssessmentPublic:
        assessment = await svc.create_assessment(session=session, principal=principal, peers=peers, data=body)
        return await _one_assessment(session, principal, assessment)

    return await idem.once(work(), lambda a: a, status_code=201, headers=lambda a: {
        **_etag(a), "Location": public_url(request, f"/api/v1/community-assessments/{a.id}")})


@assessments.get("", response_model=Page[AssessmentPublic])
async def list_community_assessments(request: Request, response: Response, session: SessionDep, principal: Reader,
                                     limit: LimitQuery = 50, cursor: CursorQuery = None,
                                     community_id: str | None = None, governorate: str | None = None,
                                     status: Annotated[str | None, Query(pattern="^(draft|completed)$")] = None,
                                     assessed_from: date | None = None,
                                     assessed_to: date | None = None) -> Page[AssessmentPublic]:
    """Community assessments in your governorates, newest first."""
    stmt = svc.list_assessments_query(principal=principal, community_id=community_id, governorate=governorate,
                                      status=status, assessed_from=assessed_from, assessed_to=assessed_to)
    rows, next_cursor = await paginate(session, stmt, CommunityAssessment, limit=limit, cursor=cursor,
                                       request=request, response=response)
    return Page(items=await svc.assessments_public(session, principal, rows), next_cursor=next_cursor)


@assessments.get("/{assessment_id}", response_model=AssessmentPublic, responses=NOT_FOUND)
async def get_community_assessment(assessment_id: str, response: Response, session: SessionDep,
                                   principal: Reader) -> AssessmentPublic:
    """One community assessment with its ranked priorities (404 when absent or outside your governorates)."""
    assessment = await svc.get_assessment(session=session, principal=principal, assessment_id=assessment_id)
    response.headers.update(_etag(assessment))
    return await _one_assessment(session, principal, assessment)


@assessments.post("/{assessment_id}/completion", response_model=AssessmentPublic,
                  responses={**NOT_FOUND, **TRANSITION})
async def complete_community_assessment(assessment_id: str, body: AssessmentCompletion, session: SessionDep,
                                        outbox: OutboxDep, principal: Manager, idem: IdempotencyDep) -> JSONResponse:
    """Complete a draft assessment (once): its priorities can then be answered by projects, and the community
    counts as having a completed assessment."""
    async def work() -> AssessmentPublic:
        assessment = await svc.complete_assessment(session=session, outbox=outbox, principal=principal,
                                                   assessment_id=assessment_id, data=body)
        return await _one_assessment(session, principal, assessment)

    return await idem.once(work(), lambda a: a, headers=_etag)


# -- projects ---------------------------------------------------------------------------------------
@projects.post("", status_code=201, response_model=ProjectPublic, responses=UNAVAILABLE)
async def create_infrastructure_project(request: Request, body: ProjectCreate, session: SessionDep,
                                        outbox: OutboxDep, principal: Manager, peers: BeneficiariesDep,
                                        idem: IdempotencyDep) -> JSONResponse:
    """Plan a rehabilitation project (`status: planned`) in a community (looked up in the beneficiaries service:
    unknown or out of scope 422, unreachable 503). It answers a priority of a completed assessment of the same
    community (`assessment_priority_id`), or needs a `justification` (422 without one). The catchment's breakdown
    never exceeds `catchment_population`; `risks_to_mitigate` are ids of the answered assessment's risks."""
    async def work() -> ProjectPublic:
        project = await svc.create_project(session=session, outbox=outbox, principal=principal, peers=peers,
                                           data=body)
        return svc.project_public(project)

    return await idem.once(work(), lambda p: p, status_code=201, headers=lambda p: {
        **_etag(p), "Location": public_url(request, f"/api/v1/infrastructure-projects/{p.id}")})


@projects.get("", response_model=Page[ProjectPublic])
async def list_infrastructure_projects(request: Request, response: Response, reads: ReadsDep,
                                       principal: Reader, limit: LimitQuery = 50, cursor: CursorQuery = None,
                                       sector: Sector | None = None, status: ProjectStatus | None = None,
                                       community_id: str | None = None, governorate: str | None = None,
                                       district: str | None = None, started_from: date | None = None,
                                       started_to: date | None = None, completed_from: date | None = None,
                                       completed_to: date | None = None) -> Page[ProjectPublic]:
    """Projects in your governorates, newest first; filters by sector, status, community, governorate, district,
    start and completion dates."""
    stmt, params = svc.list_projects_query(
        principal=principal, sector=sector, status=status, community_id=community_id, governorate=governorate,
        district=district, started_from=started_from, started_to=started_to, completed_from=completed_from,
        completed_to=completed_to)
    rows, next_cursor = await paginate(reads, stmt, InfrastructureProject, limit=limit, cursor=cursor,
                                       request=request, response=response, rows_only=True, params=params)
    return Page(items=[svc.project_public(r) for r in rows], next_cursor=next_cursor)


@projects.get("/geojson", response_class=JSONResponse, responses={200: {
    "description": "An RFC 7946 FeatureCollection", "content": {"application/geo+json": {}}}})
async def get_infrastructure_projects_geojson(
        session: SessionDep, principal: Reader,
        limit: Annotated[int, Query(ge=1, le=5000, description="At most this many features (newest first).")] = 1000,
        sector: Sector | None = None, status: ProjectStatus | None = None, community_id: str | None = None,
        governorate: str | None = None, district: str | None = None, started_from: date | None = None,
        started_to: date | None = None, completed_from: date | None = None,
        completed_to: date | None = None) -> JSONResponse:
    """The located projects in your governorates as an RFC 7946 GeoJSON FeatureCollection for map views: one
    `Point` feature per project with a GPS point, coordinates `[longitude, latitude]` (WGS 84), the project's
    `id`, and its title, sector, status, community, P-codes, catchment and progress as properties. The same
    filters as the list."""
    stmt, params = svc.list_projects_query(
        principal=principal, sector=sector, status=status, community_id=community_id, governorate=governorate,
        district=district, started_from=started_from, started_to=started_to, completed_from=completed_from,
        completed_to=completed_to)
    collection = await svc.projects_geojson(session=session, stmt=stmt, params=params, limit=limit)
    return JSONResponse(collection, media_type="application/geo+json")


@projects.get("/{project_id}", response_model=ProjectPublic, responses=NOT_FOUND)
async def get_infrastructure_project(project_id: str, response: Response, reads: ReadsDep,
                                     principal: Reader) -> ProjectPublic:
    """One project (404 when absent or outside your governorates)."""
    project = await svc.read_project(reads=reads, principal=principal, project_id=project_id)
    response.headers.update(_etag(project))
    return svc.project_public(project)


@projects.post("/{project_id}/status", response_model=ProjectPublic, responses={**NOT_FOUND, **TRANSITION})
async def change_infrastructure_project_status(project_id: str, body: StatusChange, session: SessionDep,
                                               outbox: OutboxDep, principal: Manager,
                                               idem: IdempotencyDep) -> JSONResponse:
    """Move the project on, dated (`on`): planned → in_progress → completed → handed_over, and cancelled from
    planned or in_progress; anything else is 409. A handover names the `authority` that will run it; a
    cancellation gives a `reason` (422 without). Raced twice, a transition happens once (the other 409)."""
    async def work() -> ProjectPublic:
        return svc.project_public(await svc.change_status(session=session, outbox=outbox, principal=principal,
                                                          project_id=project_id, data=body))

    return await idem.once(work(), lambda p: p, headers=_etag)


@projects.post("/{project_id}/progress", status_code=201, response_model=ProgressPublic,
               responses={**NOT_FOUND, **TRANSITION})
async def record_infrastructure_project_progress(project_id: str, body: ProgressCreate, session: SessionDep,
                                                 outbox: OutboxDep, principal: Reporter,
                                                 idem: IdempotencyDep) -> JSONResponse:
    """A progress update (percent, date, note) of a project in progress; kept as history, the project shows the
    latest reported."""
    return await idem.once(svc.record_progress(session=session, outbox=outbox, principal=principal,
                                               project_id=project_id, data=body),
                           ProgressPublic.model_validate, status_code=201)


@projects.get("/{project_id}/progress", response_model=list[ProgressPublic], responses=NOT_FOUND)
async def list_infrastructure_project_progress(project_id: str, session: SessionDep,
                                               principal: Reader) -> list[ProgressPublic]:
    """The project's progress history, oldest first."""
    return [ProgressPublic.model_validate(p)
            for p in await svc.list_progress(session=session, principal=principal, project_id=project_id)]


routers = (assessments, projects)
