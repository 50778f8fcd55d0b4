"""Domain logic of the training service. Functions add and flush; the caller's session commits.

Capacity is one atomic check-and-write: an enrolment, a promotion from the waiting list and a dropout
first lock the course row (``lock_rows``: ``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite),
read its running ``enrolled_count`` as it is now, and change it in the same transaction as the enrolment
(the course is ``Versioned``, so its UPDATE is version-checked too). Concurrent enrolments therefore queue
on the course: each one sees the places the others took, and the one that finds the course full gets 409
``course-full`` (or joins the waiting list when it asked to). A residual version conflict answers 409
``concurrent-change`` (retry); never more than ``capacity`` places are taken.
"""

from __future__ import annotations

import asyncio
import calendar
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.training.models import Attendance, Course, Enrolment, FollowUp, JobOpportunity, MarketAssessment
from services.training.schemas import (
    AttendanceCreate,
    CertificationCreate,
    CompletionCreate,
    CourseCreate,
    DropoutCreate,
    EnrolmentCreate,
    EnrolmentPublic,
    FollowUpCreate,
    FollowUpDue,
    JobOpportunityCreate,
    MarketAssessmentCreate,
    TraineeMatch,
)
from shared.audit import audit
from shared.auth import Principal
from shared.concurrency import lock_rows, touch
from shared.db import Reads, utcnow
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable
from shared.events.training import (
    EnrolmentCompleted,
    EnrolmentCreated,
    EnrolmentDropped,
    EnrolmentPromoted,
    FollowUpRecorded,
)
from shared.outbox import Outbox
from shared.peers import Beneficiaries
from shared.scope import Conditions, get_in_scope, list_in_scope, read_in_scope, select_filtered, select_in_scope

OVERRIDERS = frozenset({"programme_manager", "admin"})
ACTIVE = ("enrolled", "waitlisted", "completed")  # an enrolment that makes a second one of the person a 409
FOLLOW_UP_MONTHS = (3, 6)
LOOKUP_CONCURRENCY = 8


def _field_error(field: str, msg: str) -> Unprocessable:
    return Unprocessable(msg, errors=[{"loc": ["body", field], "msg": msg}])


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


# -- courses ----------------------------------------------------------------------------------------
async def create_course(*, session: AsyncSession, principal: Principal, peers: Beneficiaries,
                        data: CourseCreate) -> Course:
    """A course in a community the caller may see (asked of the beneficiaries service: 422 when unknown or out of
    scope, 503 when it cannot be reached)."""
    community = await peers.community(data.community_id)
    course = Course(**data.model_dump(), district_pcode=community.district_pcode,
                    governorate_pcode=community.governorate_pcode)
    session.add(course)
    audit(session, principal=principal, entity="course", entity_id=course.id, action="created",
          fields=data.model_fields_set)
    await session.flush()
    return course


async def get_course(*, session: AsyncSession, principal: Principal, course_id: str) -> Course:
    return await get_in_scope(session, Course, course_id, principal, label="course")


async def read_course(*, reads: Reads, principal: Principal, course_id: str) -> Any:
    """``get_course`` for a request that only shows it: a read-only row, no session."""
    return await read_in_scope(reads, Course, course_id, principal, label="course")


_COURSE = Course.__table__.c  # type: ignore[attr-defined]
_COURSE_FILTERS: Conditions = {"community_id": _COURSE.community_id, "governorate": _COURSE.governorate_pcode,
                               "skill_area": _COURSE.skill_area, "audience": _COURSE.audience}


def list_courses_query(*, principal: Principal, community_id: str | None, governorate: str | None,
                       skill_area: str | None, audience: str | None) -> tuple[Select[Any], dict[str, Any]]:
    """Courses in the caller's governorates: the statement (built once per combination of filters) and its
    values."""
    return list_in_scope(Course, principal, _COURSE_FILTERS, bound=dict(
        community_id=community_id, governorate=governorate, skill_area=skill_area, audience=audience))


async def _locked_course(session: AsyncSession, course_id: str) -> Course:
    """The course row locked for this transaction, as it is now (other transactions' commits included)."""
    return (await lock_rows(session, Course, [course_id]))[course_id]


# -- enrolments -------------------------------------------------------------------------------------
def attendance_percent(course: Course, enrolment: Enrolment) -> int:
    """Sessions attended over the planned sessions (or, without a plan, over the sessions held so far)."""
    sessions = course.planned_sessions or course.sessions_held
    return min(100, enrolment.sessions_attended * 100 // sessions) if sessions else 0


def meets_threshold(course: Course, enrolment: Enrolment) -> bool:
    return course.completion_threshold == 0 or attendance_percent(course, enrolment) >= course.completion_threshold


async def to_public(session: AsyncSession, enrolment: Enrolment, course: Course | None = None) -> EnrolmentPublic:
    course = course or await session.get(Course, enrolment.course_id)
    assert course is not None
    position = None
    if enrolment.status == "waitlisted" and enrolment.waitlisted_at is not None:
        ahead = (await session.execute(select(func.count()).select_from(Enrolment).where(
            Enrolment.course_id == enrolment.course_id, Enrolment.status == "waitlisted",
            or_(Enrolment.waitlisted_at < enrolment.waitlisted_at,  # type: ignore[operator]
                and_(Enrolment.waitlisted_at == enrolment.waitlisted_at, Enrolment.id < enrolment.id)))))
        position = int(ahead.scalar_one()) + 1
    return EnrolmentPublic(
        id=enrolment.id, course_id=enrolment.course_id, beneficiary_id=enrolment.beneficiary_id,
        status=enrolment.status,  # type: ignore[arg-type]
        skill_area=enrolment.skill_area, community_id=enrolment.community_id,
        governorate_pcode=enrolment.governorate_pcode, enrolled_on=enrolment.enrolled_on,
        waitlist_position=position, sessions_attended=enrolment.sessions_attended,
        attendance_percent=attendance_percent(course, enrolment), meets_threshold=meets_threshold(course, enrolment),
        completed_on=enrolment.completed_on, certified=enrolment.certified, certified_on=enrolment.certified_on,
        overridden=enrolment.override_reason is not None, dropped_on=enrolment.dropped_on,
        drop_reason=enrolment.drop_reason,  # type: ignore[arg-type]
        version=enrolment.version, created_at=enrolment.created_at)


def _snapshot(enrolment: Enrolment, course: Course) -> dict[str, Any]:
    return dict(enrolment_id=enrolment.id, course_id=course.id, beneficiary_id=enrolment.beneficiary_id,
                revision=enrolment.version, status=enrolment.status, skill_area=course.skill_area,
                audience=course.audience, community_id=course.community_id, district_pcode=course.district_pcode,
                governorate_pcode=course.governorate_pcode)


async def _same_person_enrolled(session: AsyncSession, peers: Beneficiaries, course_id: str, survivor_id: str,
                                requested_id: str) -> bool:
    """Whether the person (``survivor_id``, merges followed) already holds an active enrolment in the course,
    under this id or under a record merged into it since (asked of the beneficiaries service)."""
    stored = set((await session.execute(select(Enrolment.beneficiary_id).where(
        Enrolment.course_id == course_id, Enrolment.status.in_(ACTIVE)))).scalars())  # type: ignore[attr-defined]
    if stored & {survivor_id, requested_id}:
        return True
    gate = asyncio.Semaphore(LOOKUP_CONCURRENCY)

    async def resolves_to_survivor(other: str) -> bool:
        async with gate:
            try:
                return (await peers.get(other)).id == survivor_id
            except Unprocessable:  # unknown or outside the caller's governorates: not this person
                return False

    return any(await asyncio.gather(*(resolves_to_survivor(other) for other in sorted(stored))))


async def enrol(*, session: AsyncSession, outbox: Outbox, principal: Principal, peers: Beneficiaries,
                course_id: str, data: EnrolmentCreate) -> Enrolment:
    """Enrol a person (merges followed) in a course, or put them on its waiting list.

    404: no such course in scope; 422: unknown or out-of-scope person; 503: the beneficiaries service cannot be
    reached (nothing stored); 409: consent withdrawn, the same person already enrolled (merges counted), or the
    course full (unless ``waitlist``)."""
    person = await peers.get(data.beneficiary_id)
    course = await get_course(session=session, principal=principal, course_id=course_id)
    if not person.consent_given:
        raise Conflict("The person has withdrawn their consent; no new assistance can be recorded",
                       slug="consent-withdrawn")
    if await _same_person_enrolled(session, peers, course.id, person.id, person.requested_id):
        raise Conflict("This person is already enrolled in the course (or on its waiting list)",
                       slug="already-enrolled")
    course = await _locked_course(session, course.id)
    # Checked again under the lock: a concurrent enrolment of the same record may have committed meanwhile.
    again = (await session.execute(select(func.count()).select_from(Enrolment).where(
        Enrolment.course_id == course.id, Enrolment.status.in_(ACTIVE),  # type: ignore[attr-defined]
        Enrolment.beneficiary_id.in_({person.id, person.requested_id})))).scalar_one()  # type: ignore[attr-defined]
    if again:
        raise Conflict("This person is already enrolled in the course (or on its waiting list)",
                       slug="already-enrolled")
    full = course.enrolled_count >= course.capacity
    if full and not data.waitlist:
        raise Conflict(f"The course is full ({course.capacity} places)", slug="course-full")
    enrolment = Enrolment(course_id=course.id, beneficiary_id=person.id,
                          beneficiary_governorate_pcode=person.governorate_pcode,
                          status="waitlisted" if full else "enrolled", skill_area=course.skill_area,
                          community_id=course.community_id, district_pcode=course.district_pcode,
                          governorate_pcode=course.governorate_pcode, enrolled_on=utcnow().date(),
                          waitlisted_at=utcnow() if full else None)
    session.add(enrolment)
    if full:
        touch(course)  # the waiting list's order is decided under the course's version too
    else:
        course.enrolled_count += 1
    course.updated_at = utcnow()
    audit(session, principal=principal, entity="enrolment", entity_id=enrolment.id, action=enrolment.status,
          fields=data.model_fields_set)
    await session.flush()
    outbox.emit(session, EnrolmentCreated(**_snapshot(enrolment, course), enrolled_on=enrolment.enrolled_on),
                subject_id=enrolment.id)
    return enrolment


async def get_enrolment(*, session: AsyncSession, principal: Principal, enrolment_id: str) -> Enrolment:
    return await get_in_scope(session, Enrolment, enrolment_id, principal, label="enrolment")


def list_enrolments_query(*, principal: Principal, course_id: str | None, beneficiary_id: str | None,
                          status: str | None, governorate: str | None, skill_area: str | None) -> Select[Any]:
    return select_filtered(Enrolment, principal, course_id=course_id, beneficiary_id=beneficiary_id, status=status,
                           governorate_pcode=governorate, skill_area=skill_area)


async def _enrolment_for_transition(session: AsyncSession, principal: Principal,
                                    enrolment_id: str) -> tuple[Enrolment, Course]:
    """The enrolment (404 when absent or out of scope) and its course, the course locked first: every
    transition that can move places takes the course's lock before the enrolment's, in one order."""
    enrolment = await get_enrolment(session=session, principal=principal, enrolment_id=enrolment_id)
    course = await _locked_course(session, enrolment.course_id)
    enrolment = (await lock_rows(session, Enrolment, [enrolment.id]))[enrolment.id]
    return enrolment, course


# -- attendance -------------------------------------------------------------------------------------
async def record_attendance(*, session: AsyncSession, principal: Principal, course_id: str,
                            data: AttendanceCreate) -> tuple[Course, list[Enrolment]]:
    """Who attended one session, for many trainees at once. Recording a trainee's session again overwrites it
    (idempotent per trainee and session); ``sessions_attended`` is kept as a running count."""
    course = await get_course(session=session, principal=principal, course_id=course_id)
    course = await _locked_course(session, course.id)
    if course.planned_sessions is not None and data.session > course.planned_sessions:
        raise _field_error("session", f"the course plans {course.planned_sessions} sessions")
    if data.held_on < course.start_date:
        raise _field_error("held_on", "the session cannot be held before the course starts")
    ids = [r.enrolment_id for r in data.records]
    if len(set(ids)) != len(ids):
        raise _field_error("records", "an enrolment appears twice")
    enrolments = await lock_rows(session, Enrolment, ids)
    errors = [{"loc": ["body", "records", i, "enrolment_id"], "msg": "not an enrolment of this course"}
              for i, r in enumerate(data.records)
              if r.enrolment_id not in enrolments or enrolments[r.enrolment_id].course_id != course.id]
    if errors:
        raise Unprocessable("Some records name no enrolment of this course", errors=errors)
    not_enrolled = sorted(e.id for e in enrolments.values() if e.status != "enrolled")
    if not_enrolled:
        raise Conflict("Attendance is recorded only for enrolled trainees (not waitlisted, completed or dropped)",
                       slug="not-enrolled", enrolments=not_enrolled)
    existing = {a.enrolment_id: a for a in (await session.execute(select(Attendance).where(
        Attendance.course_id == course.id, Attendance.session == data.session))).scalars()}
    if not existing:
        course.sessions_held += 1
    else:
        touch(course)  # concurrent attendance of one course conflicts on the course
    course.updated_at = utcnow()
    for record in data.records:
        enrolment = enrolments[record.enrolment_id]
        row = existing.get(enrolment.id)
        before = row.present if row is not None else False
        if row is None:
            session.add(Attendance(enrolment_id=enrolment.id, session=data.session, course_id=course.id,
                                   held_on=data.held_on, present=record.present))
        else:
            row.present, row.held_on, row.recorded_at = record.present, data.held_on, utcnow()
        if record.present != before:
            enrolment.sessions_attended += 1 if record.present else -1
            enrolment.updated_at = utcnow()
    audit(session, principal=principal, entity="course", entity_id=course.id, action="attendance_recorded",
          fields=["session", "records"])
    await session.flush()
    return course, [enrolments[i] for i in ids]


async def attendance_of(*, session: AsyncSession, enrolment: Enrolment) -> list[Attendance]:
    return list((await session.execute(select(Attendance).where(Attendance.enrolment_id == enrolment.id)
                                       .order_by(Attendance.session))).scalars())  # type: ignore[arg-type]


# -- completion, certification, dropout -------------------------------------------------------------
async def complete(*, session: AsyncSession, outbox: Outbox, principal: Principal, enrolment_id: str,
                   data: CompletionCreate) -> Enrolment:
    """Complete an enrolled trainee. Below the course's attendance threshold it is 409, unless a
    programme_manager or admin gives an ``override_reason`` (another role giving one: 403)."""
    enrolment, course = await _enrolment_for_transition(session, principal, enrolment_id)
    if enrolment.status != "enrolled":
        raise Conflict(f"A {enrolment.status} enrolment cannot be completed", slug="invalid-transition")
    if data.completed_on < course.start_date:
        raise _field_error("completed_on", "the course had not started on that date")
    percent = attendance_percent(course, enrolment)
    overridden = False
    if not meets_threshold(course, enrolment):
        if data.override_reason is None:
            raise Conflict(f"Attendance {percent}% is below the course's threshold of {course.completion_threshold}%",
                           slug="below-threshold", attendance_percent=percent,
                           completion_threshold=course.completion_threshold)
        if not principal.has_any(OVERRIDERS):
            raise Forbidden("Only a programme_manager or admin may override the attendance threshold")
        overridden = True
        enrolment.override_reason = data.override_reason
    enrolment.status, enrolment.completed_on = "completed", data.completed_on
    if data.certified:
        enrolment.certified, enrolment.certified_on = True, data.completed_on
    enrolment.updated_at = utcnow()
    audit(session, principal=principal, entity="enrolment", entity_id=enrolment.id, action="completed",
          fields=data.model_fields_set)
    await session.flush()
    outbox.emit(session, EnrolmentCompleted(**_snapshot(enrolment, course), completed_on=data.completed_on,
                                            certified=enrolment.certified, attendance_percent=percent,
                                            overridden=overridden), subject_id=enrolment.id)
    return enrolment


async def certify(*, session: AsyncSession, principal: Principal, enrolment_id: str,
                  data: CertificationCreate) -> Enrolment:
    """Record the certificate of a completed trainee (twice: 409)."""
    enrolment = await get_enrolment(session=session, principal=principal, enrolment_id=enrolment_id)
    if enrolment.status != "completed":
        raise Conflict(f"A {enrolment.status} enrolment cannot be certified", slug="invalid-transition")
    if enrolment.certified:
        raise Conflict("The trainee is already certified", slug="invalid-transition")
    if enrolment.completed_on and data.certified_on < enrolment.completed_on:
        raise _field_error("certified_on", "a certificate cannot predate the completion")
    enrolment.certified, enrolment.certified_on, enrolment.updated_at = True, data.certified_on, utcnow()
    audit(session, principal=principal, entity="enrolment", entity_id=enrolment.id, action="certified",
          fields=data.model_fields_set)
    await session.flush()
    return enrolment


async def drop(*, session: AsyncSession, outbox: Outbox, principal: Principal, enrolment_id: str,
               data: DropoutCreate) -> Enrolment:
    """An enrolled or waitlisted trainee drops out. A freed place goes to the first on the waiting list
    (``EnrolmentPromoted``), in the order they joined it."""
    enrolment, course = await _enrolment_for_transition(session, principal, enrolment_id)
    if enrolment.status not in ("enrolled", "waitlisted"):
        raise Conflict(f"A {enrolment.status} enrolment cannot be dropped", slug="invalid-transition")
    freed = enrolment.status == "enrolled"
    enrolment.status, enrolment.dropped_on, enrolment.drop_reason = "dropped", data.dropped_on, data.reason
    enrolment.drop_note, enrolment.updated_at = data.note, utcnow()
    audit(session, principal=principal, entity="enrolment", entity_id=enrolment.id, action="dropped",
          fields=data.model_fields_set)
    promoted = None
    if freed:
        course.enrolled_count -= 1
        promoted = (await session.execute(
            select(Enrolment).where(Enrolment.course_id == course.id, Enrolment.status == "waitlisted")
            .order_by(Enrolment.waitlisted_at, Enrolment.id).limit(1))).scalars().first()  # type: ignore[arg-type]
        if promoted is not None:
            promoted.status, promoted.updated_at = "enrolled", utcnow()
            course.enrolled_count += 1
            audit(session, principal=principal, entity="enrolment", entity_id=promoted.id, action="promoted")
    else:
        touch(course)
    course.updated_at = utcnow()
    await session.flush()
    outbox.emit(session, EnrolmentDropped(**_snapshot(enrolment, course), dropped_on=data.dropped_on,
                                          reason=data.reason), subject_id=enrolment.id)
    if promoted is not None:
        outbox.emit(session, EnrolmentPromoted(**_snapshot(promoted, course), promoted_on=data.dropped_on),
                    subject_id=promoted.id)
    return enrolment


# -- employment follow-ups --------------------------------------------------------------------------
async def record_follow_up(*, session: AsyncSession, outbox: Outbox, principal: Principal, enrolment_id: str,
                           data: FollowUpCreate) -> FollowUp:
    """The 3- or 6-month employment follow-up of a completed trainee (each once: a second is 409)."""
    enrolment = await get_enrolment(session=session, principal=principal, enrolment_id=enrolment_id)
    if enrolment.status != "completed" or enrolment.completed_on is None:
        raise Conflict(f"A {enrolment.status} enrolment has no follow-up", slug="invalid-transition")
    if data.recorded_on < enrolment.completed_on:
        raise _field_error("recorded_on", "a follow-up cannot predate the completion")
    exists = (await session.execute(select(FollowUp.id).where(
        FollowUp.enrolment_id == enrolment.id, FollowUp.months_after == data.months_after))).first()
    if exists:
        raise Conflict(f"The {data.months_after}-month follow-up is already recorded", slug="already-recorded")
    follow_up = FollowUp(enrolment_id=enrolment.id, months_after=data.months_after,
                         employment_status=data.employment_status, income_band=data.income_band,
                         recorded_on=data.recorded_on, governorate_pcode=enrolment.governorate_pcode)
    session.add(follow_up)
    touch(enrolment)  # two racing follow-ups of one enrolment conflict (and the unique key backs it)
    enrolment.updated_at = utcnow()
    audit(session, principal=principal, entity="follow_up", entity_id=follow_up.id, action="recorded",
          fields=data.model_fields_set)
    await session.flush()
    outbox.emit(session, FollowUpRecorded(
        follow_up_id=follow_up.id, enrolment_id=enrolment.id, beneficiary_id=enrolment.beneficiary_id,
        months_after=data.months_after, employment_status=data.employment_status, income_band=data.income_band,
        recorded_on=data.recorded_on, skill_area=enrolment.skill_area,
        governorate_pcode=enrolment.governorate_pcode), subject_id=enrolment.id)
    return follow_up


async def follow_ups_of(*, session: AsyncSession, enrolment: Enrolment) -> list[FollowUp]:
    return list((await session.execute(select(FollowUp).where(FollowUp.enrolment_id == enrolment.id)
                                       .order_by(FollowUp.months_after))).scalars())  # type: ignore[arg-type]


async def follow_ups_due(*, session: AsyncSession, principal: Principal, on: date, governorate: str | None,
                         course_id: str | None, limit: int) -> list[FollowUpDue]:
    """Follow-ups not recorded yet whose date (3 or 6 months after completion) is ``on`` or earlier, oldest
    first."""
    stmt = select_in_scope(Enrolment, principal).where(
        Enrolment.status == "completed",
        Enrolment.completed_on <= on - timedelta(days=28 * FOLLOW_UP_MONTHS[0]))  # type: ignore[operator]
    if governorate:
        stmt = stmt.where(Enrolment.governorate_pcode == governorate)
    if course_id:
        stmt = stmt.where(Enrolment.course_id == course_id)
    enrolments = list((await session.execute(stmt)).scalars())
    done: set[tuple[str, int]] = set()
    for chunk in range(0, len(enrolments), 500):
        ids = [e.id for e in enrolments[chunk:chunk + 500]]
        done |= set((await session.execute(select(FollowUp.enrolment_id, FollowUp.months_after).where(
            FollowUp.enrolment_id.in_(ids)))).tuples())  # type: ignore[attr-defined]
    due = []
    for e in enrolments:
        assert e.completed_on is not None
        for months in FOLLOW_UP_MONTHS:
            due_on = add_months(e.completed_on, months)
            if due_on <= on and (e.id, months) not in done:
                due.append(FollowUpDue(enrolment_id=e.id, course_id=e.course_id, beneficiary_id=e.beneficiary_id,
                                       months_after=months, due_on=due_on, completed_on=e.completed_on))
    due.sort(key=lambda d: (d.due_on, d.enrolment_id, d.months_after))
    return due[:limit]


# -- market assessments and matching ----------------------------------------------------------------
async def create_market_assessment(*, session: AsyncSession, principal: Principal,
                                   data: MarketAssessmentCreate) -> MarketAssessment:
    if not principal.sees(data.governorate_pcode):
        raise _field_error("governorate_pcode", "the governorate is outside your governorates")
    assessment = MarketAssessment(**data.model_dump())
    session.add(assessment)
    audit(session, principal=principal, entity="market_assessment", entity_id=assessment.id, action="created",
          fields=data.model_fields_set)
    await session.flush()
    return assessment


async def get_market_assessment(*, session: AsyncSession, principal: Principal,
                                assessment_id: str) -> MarketAssessment:
    return await get_in_scope(session, MarketAssessment, assessment_id, principal, label="market assessment")


def list_market_assessments_query(*, principal: Principal, governorate: str | None) -> Select[Any]:
    return select_filtered(MarketAssessment, principal, governorate_pcode=governorate)


async def create_job_opportunity(*, session: AsyncSession, principal: Principal,
                                 data: JobOpportunityCreate) -> JobOpportunity:
    """An opportunity a market assessment found, in the assessment's governorate."""
    try:
        assessment = await get_market_assessment(session=session, principal=principal,
                                                 assessment_id=data.market_assessment_id)
    except NotFound:
        raise _field_error("market_assessment_id", "unknown market assessment") from None
    opportunity = JobOpportunity(**data.model_dump(), governorate_pcode=assessment.governorate_pcode)
    session.add(opportunity)
    audit(session, principal=principal, entity="job_opportunity", entity_id=opportunity.id, action="created",
          fields=data.model_fields_set)
    await session.flush()
    return opportunity


async def get_job_opportunity(*, session: AsyncSession, principal: Principal, opportunity_id: str) -> JobOpportunity:
    return await get_in_scope(session, JobOpportunity, opportunity_id, principal, label="job opportunity")


def list_job_opportunities_query(*, principal: Principal, governorate: str | None, skill_area: str | None,
                                 sector: str | None, open_on: date | None) -> Select[Any]:
    stmt = select_filtered(JobOpportunity, principal, governorate_pcode=governorate, skill_area=skill_area,
                           sector=sector)
    if open_on:
        stmt = stmt.where(JobOpportunity.period_end >= open_on)
    return stmt


async def trainees_for_opportunity(*, session: AsyncSession, principal: Principal, opportunity_id: str,
                                   limit: int) -> list[TraineeMatch]:
    """Completed trainees whose skill area is the opportunity's and who live in its governorate (one line per
    person: their latest completion in that skill), within the caller's governorates."""
    opportunity = await get_job_opportunity(session=session, principal=principal, opportunity_id=opportunity_id)
    rows = (await session.execute(select_in_scope(Enrolment, principal).where(
        Enrolment.status == "completed", Enrolment.skill_area == opportunity.skill_area,
        Enrolment.beneficiary_governorate_pcode == opportunity.governorate_pcode)
        .order_by(Enrolment.completed_on.desc(), Enrolment.id))).scalars()  # type: ignore[union-attr]
    matches: dict[str, TraineeMatch] = {}
    for e in rows:
        if e.beneficiary_id not in matches and e.completed_on is not None:
            matches[e.beneficiary_id] = TraineeMatch(beneficiary_id=e.beneficiary_id, enrolment_id=e.id,
                                                     course_id=e.course_id, skill_area=e.skill_area,
                                                     completed_on=e.completed_on, certified=e.certified)
    return list(matches.values())[:limit]


async def opportunities_for_enrolment(*, session: AsyncSession, principal: Principal, enrolment_id: str,
                                      on: date, limit: int) -> list[JobOpportunity]:
    """Opportunities in the trainee's governorate for the skill they completed, whose period has not ended
    by ``on``. A trainee who has not completed has none (409)."""
    enrolment = await get_enrolment(session=session, principal=principal, enrolment_id=enrolment_id)
    if enrolment.status != "completed":
        raise Conflict("Only a completed trainee is matched with opportunities", slug="not-completed")
    stmt = list_job_opportunities_query(principal=principal, governorate=enrolment.beneficiary_governorate_pcode,
                                        skill_area=enrolment.skill_area, sector=None, open_on=on)
    stmt = stmt.order_by(JobOpportunity.period_start, JobOpportunity.id).limit(limit)  # type: ignore[arg-type]
    return list((await session.execute(stmt)).scalars())
