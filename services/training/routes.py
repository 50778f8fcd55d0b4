"""HTTP routes of the training service: thin, the domain logic is in service.py.

Roles (``admin`` always passes):

- create courses: ``programme_manager``;
- enrol, record attendance, complete, certify, record a dropout: ``programme_manager``, ``case_worker``,
  ``partner_system``; overriding the attendance threshold on completion: ``programme_manager`` only;
- record employment follow-ups: ``me_officer``, ``programme_manager``; the list of follow-ups due: also
  ``case_worker``;
- market assessments and job opportunities: ``programme_manager``, ``me_officer`` create them;
- read anything (lists, matching): ``programme_manager``, ``case_worker``, ``me_officer``, ``partner_system``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from services.training import service as svc
from services.training.models import Course, Enrolment, JobOpportunity, MarketAssessment
from services.training.schemas import (
    AttendanceCreate,
    AttendancePublic,
    CertificationCreate,
    CompletionCreate,
    CourseCreate,
    CoursePublic,
    DropoutCreate,
    EnrolmentCreate,
    EnrolmentPublic,
    FollowUpCreate,
    FollowUpDue,
    FollowUpPublic,
    JobOpportunityCreate,
    JobOpportunityPublic,
    MarketAssessmentCreate,
    MarketAssessmentPublic,
    TraineeMatch,
)
from shared.auth import require_roles
from shared.db import ReadsDep, SessionDep, utcnow
from shared.etag import make_etag
from shared.events.training import Audience, EnrolmentStatus
from shared.idempotency import IdempotencyDep
from shared.outbox import OutboxDep
from shared.pagination import CursorQuery, LimitQuery, Page, paginate
from shared.peers import BeneficiariesDep
from shared.urls import public_url

CourseManager = require_roles("programme_manager")
Trainer = require_roles("programme_manager", "case_worker", "partner_system")
FollowUpRecorder = require_roles("me_officer", "programme_manager")
FollowUpReader = require_roles("me_officer", "programme_manager", "case_worker")
MarketAnalyst = require_roles("programme_manager", "me_officer")
Reader = require_roles("programme_manager", "case_worker", "me_officer", "partner_system")

UNAVAILABLE = {503: {"description": "The beneficiaries service cannot be reached; nothing was stored"}}
NOT_FOUND = {404: {"description": "No such record in your governorates"}}
CONFLICT = {409: {"description": "The current status does not allow it, or changed concurrently"}}

courses = APIRouter(prefix="/api/v1/courses", tags=["training"])
enrolments = APIRouter(prefix="/api/v1/enrolments", tags=["training"])
follow_ups = APIRouter(prefix="/api/v1/follow-ups", tags=["training"])
assessments = APIRouter(prefix="/api/v1/market-assessments", tags=["market assessments"])
opportunities = APIRouter(prefix="/api/v1/job-opportunities", tags=["market assessments"])


def _etag(row: Course | Enrolment | Any) -> dict[str, str]:
    return {"ETag": make_etag(row.id, row.version)}


# -- courses ----------------------------------------------------------------------------------------
@courses.post("", status_code=201, response_model=CoursePublic, responses=UNAVAILABLE)
async def create_course(request: Request, body: CourseCreate, session: SessionDep, principal: CourseManager,
                        peers: BeneficiariesDep, idem: IdempotencyDep) -> JSONResponse:
    """A vocational course in a community (its district and governorate come from the beneficiaries service;
    an unknown or out-of-scope community is 422). `completion_threshold` is the percent of sessions a trainee
    must attend (default 80; 0: attendance not required)."""
    return await idem.once(svc.create_course(session=session, principal=principal, peers=peers, data=body),
                           CoursePublic.model_validate, status_code=201,
                           headers=lambda c: {**_etag(c), "Location": public_url(request, f"/api/v1/courses/{c.id}")})


@courses.get("", response_model=Page[CoursePublic])
async def list_courses(request: Request, response: Response, reads: ReadsDep, principal: Reader,
                       limit: LimitQuery = 50, cursor: CursorQuery = None, community_id: str | None = None,
                       governorate: str | None = None, skill_area: str | None = None,
                       audience: Audience | None = None) -> Page[CoursePublic]:
    """Courses in your governorates, newest first."""
    stmt, params = svc.list_courses_query(principal=principal, community_id=community_id, governorate=governorate,
                                          skill_area=skill_area, audience=audience)
    rows, next_cursor = await paginate(reads, stmt, Course, limit=limit, cursor=cursor, request=request,
                                       response=response, rows_only=True, params=params)
    return Page(items=[CoursePublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@courses.get("/{course_id}", response_model=CoursePublic, responses=NOT_FOUND)
async def get_course(course_id: str, response: Response, reads: ReadsDep, principal: Reader) -> CoursePublic:
    """One course (404 when absent or outside your governorates)."""
    course = await svc.read_course(reads=reads, principal=principal, course_id=course_id)
    response.headers.update(_etag(course))
    return CoursePublic.model_validate(course)


@courses.post("/{course_id}/enrolments", status_code=201, response_model=EnrolmentPublic,
              responses={**NOT_FOUND, **UNAVAILABLE,
                         409: {"description": "Course full (`course-full`), the same person already enrolled "
                                              "(merges counted, `already-enrolled`), consent withdrawn "
                                              "(`consent-withdrawn`), or changed concurrently"}})
async def enrol_in_course(request: Request, course_id: str, body: EnrolmentCreate, session: SessionDep,
                          outbox: OutboxDep, principal: Trainer, peers: BeneficiariesDep,
                          idem: IdempotencyDep) -> JSONResponse:
    """Enrol a person (looked up with your token; a merged record enrols its survivor). A full course is 409,
    or with `"waitlist": true` the person joins its waiting list (`status: waitlisted`) and moves up, in
    order, when an enrolled trainee drops out. Concurrent enrolments never take more than `capacity` places."""
    async def work() -> EnrolmentPublic:
        enrolment = await svc.enrol(session=session, outbox=outbox, principal=principal, peers=peers,
                                    course_id=course_id, data=body)
        return await svc.to_public(session, enrolment)

    return await idem.once(work(), lambda e: e, status_code=201,
                           headers=lambda e: {"ETag": make_etag(e.id, e.version),
                                              "Location": public_url(request, f"/api/v1/enrolments/{e.id}")})


@courses.post("/{course_id}/attendance", response_model=AttendancePublic,
              responses={**NOT_FOUND, 409: {"description": "A record names a trainee who is not enrolled"}})
async def record_attendance(course_id: str, body: AttendanceCreate, session: SessionDep, principal: Trainer,
                            idem: IdempotencyDep) -> JSONResponse:
    """Attendance of one session for many trainees in one call. Sending a trainee's session again overwrites
    it: the result is the same however often a call is repeated."""
    async def work() -> AttendancePublic:
        course, rows = await svc.record_attendance(session=session, principal=principal, course_id=course_id,
                                                   data=body)
        return AttendancePublic(course_id=course.id, session=body.session, held_on=body.held_on,
                                recorded=len(rows), enrolments=[await svc.to_public(session, e, course) for e in rows])

    return await idem.once(work(), lambda a: a)


# -- enrolments -------------------------------------------------------------------------------------
@enrolments.get("", response_model=Page[EnrolmentPublic])
async def list_enrolments(request: Request, response: Response, session: SessionDep, principal: Reader,
                          limit: LimitQuery = 50, cursor: CursorQuery = None, course_id: str | None = None,
                          beneficiary_id: str | None = None, status: EnrolmentStatus | None = None,
                          governorate: str | None = None, skill_area: str | None = None) -> Page[EnrolmentPublic]:
    """Enrolments in courses of your governorates, newest first."""
    stmt = svc.list_enrolments_query(principal=principal, course_id=course_id, beneficiary_id=beneficiary_id,
                                     status=status, governorate=governorate, skill_area=skill_area)
    rows, next_cursor = await paginate(session, stmt, Enrolment, limit=limit, cursor=cursor, request=request,
                                       response=response)
    return Page(items=[await svc.to_public(session, r) for r in rows], next_cursor=next_cursor)


@enrolments.get("/{enrolment_id}", response_model=EnrolmentPublic, responses=NOT_FOUND)
async def get_enrolment(enrolment_id: str, response: Response, session: SessionDep,
                        principal: Reader) -> EnrolmentPublic:
    """One enrolment with its attendance so far and whether it meets the course's threshold."""
    enrolment = await svc.get_enrolment(session=session, principal=principal, enrolment_id=enrolment_id)
    response.headers.update(_etag(enrolment))
    return await svc.to_public(session, enrolment)


@enrolments.post("/{enrolment_id}/completion", response_model=EnrolmentPublic, responses={
    **NOT_FOUND, 409: {"description": "Below the attendance threshold (`below-threshold`), not enrolled, or "
                                      "changed concurrently"},
    403: {"description": "An override by a role other than programme_manager or admin"}})
async def complete_enrolment(enrolment_id: str, body: CompletionCreate, session: SessionDep, outbox: OutboxDep,
                             principal: Trainer, idem: IdempotencyDep) -> JSONResponse:
    """Complete the course: attendance must reach the course's threshold, unless a `programme_manager` or
    `admin` gives an `override_reason`. The person then counts as directly assisted."""
    async def work() -> EnrolmentPublic:
        enrolment = await svc.complete(session=session, outbox=outbox, principal=principal,
                                       enrolment_id=enrolment_id, data=body)
        return await svc.to_public(session, enrolment)

    return await idem.once(work(), lambda e: e, headers=lambda e: {"ETag": make_etag(e.id, e.version)})


@enrolments.post("/{enrolment_id}/certification", response_model=EnrolmentPublic, responses={**NOT_FOUND, **CONFLICT})
async def certify_enrolment(enrolment_id: str, body: CertificationCreate, session: SessionDep, principal: Trainer,
                            idem: IdempotencyDep) -> JSONResponse:
    """Record the certificate of a completed trainee (once)."""
    async def work() -> EnrolmentPublic:
        enrolment = await svc.certify(session=session, principal=principal, enrolment_id=enrolment_id, data=body)
        return await svc.to_public(session, enrolment)

    return await idem.once(work(), lambda e: e, headers=lambda e: {"ETag": make_etag(e.id, e.version)})


@enrolments.post("/{enrolment_id}/dropout", response_model=EnrolmentPublic, responses={**NOT_FOUND, **CONFLICT})
async def record_dropout(enrolment_id: str, body: DropoutCreate, session: SessionDep, outbox: OutboxDep,
                         principal: Trainer, idem: IdempotencyDep) -> JSONResponse:
    """An enrolled or waitlisted trainee drops out, with a reason (the `note` stays in this service). The
    freed place goes to the first person on the waiting list."""
    async def work() -> EnrolmentPublic:
        enrolment = await svc.drop(session=session, outbox=outbox, principal=principal, enrolment_id=enrolment_id,
                                   data=body)
        return await svc.to_public(session, enrolment)

    return await idem.once(work(), lambda e: e, headers=lambda e: {"ETag": make_etag(e.id, e.version)})


@enrolments.get("/{enrolment_id}/attendance", responses=NOT_FOUND)
async def list_enrolment_attendance(enrolment_id: str, session: SessionDep, principal: Reader) -> dict[str, object]:
    """The sessions recorded for one trainee."""
    enrolment = await svc.get_enrolment(session=session, principal=principal, enrolment_id=enrolment_id)
    rows = await svc.attendance_of(session=session, enrolment=enrolment)
    return {"items": [{"session": a.session, "held_on": a.held_on, "present": a.present} for a in rows]}


@enrolments.post("/{enrolment_id}/follow-ups", status_code=201, response_model=FollowUpPublic,
                 responses={**NOT_FOUND, 409: {"description": "Not completed, or this follow-up already recorded"}})
async def record_follow_up(enrolment_id: str, body: FollowUpCreate, session: SessionDep, outbox: OutboxDep,
                           principal: FollowUpRecorder, idem: IdempotencyDep) -> JSONResponse:
    """The employment follow-up 3 or 6 months after completion: employment status and monthly income band."""
    return await idem.once(svc.record_follow_up(session=session, outbox=outbox, principal=principal,
                                                enrolment_id=enrolment_id, data=body),
                           FollowUpPublic.model_validate, status_code=201)


@enrolments.get("/{enrolment_id}/follow-ups", response_model=list[FollowUpPublic], responses=NOT_FOUND)
async def list_follow_ups(enrolment_id: str, session: SessionDep, principal: FollowUpReader) -> list[FollowUpPublic]:
    enrolment = await svc.get_enrolment(session=session, principal=principal, enrolment_id=enrolment_id)
    return [FollowUpPublic.model_validate(f) for f in await svc.follow_ups_of(session=session, enrolment=enrolment)]


@enrolments.get("/{enrolment_id}/opportunities", response_model=Page[JobOpportunityPublic],
                responses={**NOT_FOUND, 409: {"description": "The trainee has not completed"}})
async def list_opportunities_for_trainee(enrolment_id: str, session: SessionDep, principal: Reader,
                                         on: date | None = None, limit: LimitQuery = 50) -> Page[JobOpportunityPublic]:
    """Job opportunities that fit a completed trainee: the course's skill area, in the governorate where the
    person lives, with a period not ended by `on` (default today)."""
    rows = await svc.opportunities_for_enrolment(session=session, principal=principal, enrolment_id=enrolment_id,
                                                 on=on or utcnow().date(), limit=limit)
    return Page(items=[JobOpportunityPublic.model_validate(r) for r in rows])


# -- follow-ups due ---------------------------------------------------------------------------------
@follow_ups.get("/due", response_model=Page[FollowUpDue])
async def list_follow_ups_due(session: SessionDep, principal: FollowUpReader, on: date | None = None,
                              governorate: str | None = None, course_id: str | None = None,
                              limit: LimitQuery = 50) -> Page[FollowUpDue]:
    """Follow-ups due by `on` (default today) and not recorded yet: 3 and 6 months after each completion,
    oldest first."""
    items = await svc.follow_ups_due(session=session, principal=principal, on=on or utcnow().date(),
                                     governorate=governorate, course_id=course_id, limit=limit)
    return Page(items=items)


# -- market assessments and job opportunities -------------------------------------------------------
@assessments.post("", status_code=201, response_model=MarketAssessmentPublic)
async def create_market_assessment(body: MarketAssessmentCreate, session: SessionDep, principal: MarketAnalyst,
                                   idem: IdempotencyDep) -> JSONResponse:
    """A labour-market assessment of a governorate (its opportunities are added under it)."""
    return await idem.once(svc.create_market_assessment(session=session, principal=principal, data=body),
                           MarketAssessmentPublic.model_validate, status_code=201)


@assessments.get("", response_model=Page[MarketAssessmentPublic])
async def list_market_assessments(request: Request, response: Response, session: SessionDep, principal: Reader,
                                  limit: LimitQuery = 50, cursor: CursorQuery = None,
                                  governorate: str | None = None) -> Page[MarketAssessmentPublic]:
    stmt = svc.list_market_assessments_query(principal=principal, governorate=governorate)
    rows, next_cursor = await paginate(session, stmt, MarketAssessment, limit=limit, cursor=cursor, request=request,
                                       response=response)
    return Page(items=[MarketAssessmentPublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@assessments.get("/{assessment_id}", response_model=MarketAssessmentPublic, responses=NOT_FOUND)
async def get_market_assessment(assessment_id: str, session: SessionDep, principal: Reader) -> MarketAssessmentPublic:
    return MarketAssessmentPublic.model_validate(
        await svc.get_market_assessment(session=session, principal=principal, assessment_id=assessment_id))


@opportunities.post("", status_code=201, response_model=JobOpportunityPublic)
async def create_job_opportunity(body: JobOpportunityCreate, session: SessionDep, principal: MarketAnalyst,
                                 idem: IdempotencyDep) -> JSONResponse:
    """An existing or potential employment opportunity found by a market assessment (in its governorate)."""
    return await idem.once(svc.create_job_opportunity(session=session, principal=principal, data=body),
                           JobOpportunityPublic.model_validate, status_code=201)


@opportunities.get("", response_model=Page[JobOpportunityPublic])
async def list_job_opportunities(request: Request, response: Response, session: SessionDep, principal: Reader,
                                 limit: LimitQuery = 50, cursor: CursorQuery = None, governorate: str | None = None,
                                 skill_area: str | None = None, sector: str | None = None,
                                 open_on: Annotated[date | None, Query(description="period not ended by then")]
                                 = None) -> Page[JobOpportunityPublic]:
    stmt = svc.list_job_opportunities_query(principal=principal, governorate=governorate, skill_area=skill_area,
                                            sector=sector, open_on=open_on)
    rows, next_cursor = await paginate(session, stmt, JobOpportunity, limit=limit, cursor=cursor, request=request,
                                       response=response)
    return Page(items=[JobOpportunityPublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@opportunities.get("/{opportunity_id}", response_model=JobOpportunityPublic, responses=NOT_FOUND)
async def get_job_opportunity(opportunity_id: str, session: SessionDep, principal: Reader) -> JobOpportunityPublic:
    return JobOpportunityPublic.model_validate(
        await svc.get_job_opportunity(session=session, principal=principal, opportunity_id=opportunity_id))


@opportunities.get("/{opportunity_id}/trainees", response_model=Page[TraineeMatch], responses=NOT_FOUND)
async def list_trainees_for_opportunity(opportunity_id: str, session: SessionDep, principal: Reader,
                                        limit: LimitQuery = 50) -> Page[TraineeMatch]:
    """Completed trainees who fit the opportunity: its skill area, living in its governorate (one per person)."""
    return Page(items=await svc.trainees_for_opportunity(session=session, principal=principal,
                                                         opportunity_id=opportunity_id, limit=limit))


routers = (courses, enrolments, follow_ups, assessments, opportunities)
