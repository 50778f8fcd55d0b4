"""HTTP routes of the grants service: thin, the domain logic is in service.py.

Roles (admin always passes):
- grant calls: programme_manager creates; every reader reads.
- applications: programme_manager, case_worker and partner_system submit; case_worker and partner_system
  withdraw on the applicant's behalf (programme_manager too).
- scoring: programme_manager and case_worker (each scorer is the token's subject).
- decisions (approve, reject, cancel), disbursements and reversals: programme_manager.
- technical support sessions: programme_manager and case_worker; monitoring visits: me_officer and
  programme_manager.
- reading: programme_manager, case_worker, me_officer, partner_system and viewer.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from services.grants import service as svc
from services.grants.models import Grant, GrantCall
from services.grants.schemas import (
    Approval,
    Cancellation,
    DisbursementCreate,
    DisbursementPublic,
    GrantCallCreate,
    GrantCallPublic,
    GrantCreate,
    GrantPublic,
    GrantStatus,
    MonitoringVisitCreate,
    MonitoringVisitPublic,
    PersonErased,
    PersonErasure,
    Rejection,
    Reversal,
    ScoreCreate,
    ScorePublic,
    ShortlistItem,
    SupportSessionCreate,
    SupportSessionPublic,
)
from shared.auth import require_roles
from shared.db import ReadsDep, SessionDep
from shared.etag import make_etag
from shared.idempotency import IdempotencyDep
from shared.outbox import OutboxDep
from shared.pagination import CursorQuery, LimitQuery, Page, paginate
from shared.peers import BeneficiariesDep
from shared.urls import public_url

Manager = require_roles("programme_manager")
Applicant = require_roles("programme_manager", "case_worker", "partner_system")
Scorer = require_roles("programme_manager", "case_worker")
Supporter = require_roles("programme_manager", "case_worker")
Monitor = require_roles("programme_manager", "me_officer")
Reader = require_roles("programme_manager", "case_worker", "me_officer", "partner_system", "viewer")

TRANSITION = {409: {"description": "The grant's status does not allow this, or it changed concurrently"}}
PEER = {503: {"description": "The beneficiaries service cannot be reached; nothing was stored"}}

calls = APIRouter(prefix="/api/v1/grant-calls", tags=["grant calls"])
grants = APIRouter(prefix="/api/v1/grants", tags=["grants"])


def _etag(grant: Grant | GrantCall | Any) -> dict[str, str]:
    return {"ETag": make_etag(grant.id, grant.version)}


@calls.post("", status_code=201, response_model=GrantCallPublic)
async def create_grant_call(request: Request, body: GrantCallCreate, session: SessionDep, principal: Manager,
                            idem: IdempotencyDep) -> JSONResponse:
    """Open a round of grants: budget, dates, eligibility, weighted scoring criteria, tranches."""
    return await idem.once(svc.create_call(session=session, principal=principal, data=body),
                           GrantCallPublic.model_validate, status_code=201,
                           headers=lambda c: {**_etag(c),
                                              "Location": public_url(request, f"/api/v1/grant-calls/{c.id}")})


@calls.get("", response_model=Page[GrantCallPublic])
async def list_grant_calls(request: Request, response: Response, reads: ReadsDep, principal: Reader,
                           limit: LimitQuery = 50, cursor: CursorQuery = None, sector: str | None = None,
                           open_on: Annotated[date | None, Query(description="Calls open on this date.")] = None,
                           ) -> Page[GrantCallPublic]:
    """Grant calls, newest first."""
    stmt, params = svc.list_calls_query(sector=sector, open_on=open_on)
    rows, next_cursor = await paginate(reads, stmt, GrantCall, limit=limit, cursor=cursor, request=request,
                                       response=response, rows_only=True, params=params)
    return Page(items=[GrantCallPublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@calls.get("/{call_id}", response_model=GrantCallPublic)
async def get_grant_call(call_id: str, response: Response, reads: ReadsDep, principal: Reader) -> GrantCallPublic:
    """One grant call (with the budget committed so far)."""
    call = await svc.read_call(reads=reads, call_id=call_id)
    response.headers.update(_etag(call))
    return GrantCallPublic.model_validate(call)


@calls.get("/{call_id}/shortlist", response_model=list[ShortlistItem])
async def get_call_shortlist(call_id: str, session: SessionDep, principal: Reader,
                             limit: LimitQuery = 50) -> list[ShortlistItem]:
    """The call's submitted applications in your governorates, ranked by mean score (then disability
    priority when the call gives it, then the earliest)."""
    return await svc.shortlist(session=session, principal=principal, call_id=call_id, limit=limit)


@grants.post("/personal-data-erasure", response_model=PersonErased)
async def erase_person(body: PersonErasure, session: SessionDep, principal: Manager) -> PersonErased:
    """Erase what the grants of one person hold about them (business name, monitoring notes and coordinates).
    The beneficiaries service calls this when it erases the person (`POST /api/v1/beneficiaries/{id}/erasure`);
    amounts and statuses stay, so the figures do not change. Audited; doing it again is harmless."""
    return PersonErased(grants_erased=await svc.erase_person(session=session, principal=principal,
                                                             beneficiary_id=body.beneficiary_id))


@grants.post("", status_code=201, response_model=GrantPublic,
             responses={409: {"description": "Consent withdrawn, call not open, or already applied"}, **PEER})
async def submit_grant_application(request: Request, body: GrantCreate, session: SessionDep, outbox: OutboxDep,
                                   principal: Applicant, peers: BeneficiariesDep,
                                   idem: IdempotencyDep) -> JSONResponse:
    """Apply for a grant for a registered person.

    The person is looked up at the beneficiaries service with your token: unknown or outside your
    governorates is 422 (the same answer), unreachable is 503 and nothing is stored; a merged id stands
    for its survivor. With a `call_id`: the call must be open, the currency the call's, the person
    eligible (422 naming each failed rule) and without another active application to the call (409).
    """
    return await idem.once(svc.submit(session=session, outbox=outbox, principal=principal, peers=peers, data=body),
                           GrantPublic.model_validate, status_code=201,
                           headers=lambda g: {**_etag(g), "Location": public_url(request, f"/api/v1/grants/{g.id}")})


@grants.get("", response_model=Page[GrantPublic])
async def list_grants(request: Request, response: Response, reads: ReadsDep, principal: Reader,
                      limit: LimitQuery = 50, cursor: CursorQuery = None, call_id: str | None = None,
                      status: GrantStatus | None = None, community_id: str | None = None,
                      governorate: str | None = None, beneficiary_id: str | None = None,
                      submitted_from: date | None = None, submitted_to: date | None = None) -> Page[GrantPublic]:
    """Grants of people in your governorates, newest first."""
    stmt, params = svc.list_grants_query(principal=principal, call_id=call_id, status=status,
                                         community_id=community_id, governorate=governorate,
                                         beneficiary_id=beneficiary_id, submitted_from=submitted_from,
                                         submitted_to=submitted_to)
    rows, next_cursor = await paginate(reads, stmt, Grant, limit=limit, cursor=cursor, request=request,
                                       response=response, rows_only=True, params=params)
    return Page(items=[GrantPublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@grants.get("/{grant_id}", response_model=GrantPublic)
async def get_grant(grant_id: str, response: Response, reads: ReadsDep, principal: Reader) -> GrantPublic:
    """One grant (404 when absent or its person lives outside your governorates)."""
    grant = await svc.read_grant(reads=reads, principal=principal, grant_id=grant_id)
    response.headers.update(_etag(grant))
    return GrantPublic.model_validate(grant)


@grants.post("/{grant_id}/scores", status_code=201, response_model=ScorePublic, responses=TRANSITION)
async def score_grant(grant_id: str, body: ScoreCreate, session: SessionDep, principal: Scorer,
                      idem: IdempotencyDep) -> JSONResponse:
    """Your marks for a submitted application against its call's criteria (again: replaces yours)."""
    return await idem.once(svc.score(session=session, principal=principal, grant_id=grant_id, data=body),
                           ScorePublic.model_validate, status_code=201)


@grants.post("/{grant_id}/approval", response_model=GrantPublic,
             responses={409: {"description": "Not submitted, over the call's remaining budget, or changed "
                                             "concurrently"}})
async def approve_grant(grant_id: str, body: Approval, session: SessionDep, outbox: OutboxDep, principal: Manager,
                        idem: IdempotencyDep) -> JSONResponse:
    """Approve a submitted application (`status: approved`), within the call's remaining budget."""
    return await idem.once(svc.approve(session=session, outbox=outbox, principal=principal, grant_id=grant_id,
                                       data=body), GrantPublic.model_validate, headers=_etag)


@grants.post("/{grant_id}/rejection", response_model=GrantPublic, responses=TRANSITION)
async def reject_grant(grant_id: str, body: Rejection, session: SessionDep, outbox: OutboxDep, principal: Manager,
                       idem: IdempotencyDep) -> JSONResponse:
    """Reject a submitted application with a reason (kept on the grant, never in events)."""
    return await idem.once(svc.reject(session=session, outbox=outbox, principal=principal, grant_id=grant_id,
                                      data=body), GrantPublic.model_validate, headers=_etag)


@grants.post("/{grant_id}/cancellation", response_model=GrantPublic, responses=TRANSITION)
async def cancel_grant(grant_id: str, body: Cancellation, session: SessionDep, outbox: OutboxDep, principal: Manager,
                       idem: IdempotencyDep) -> JSONResponse:
    """The programme cancels a submitted or approved grant (the approved amount returns to the call)."""
    return await idem.once(svc.end(session=session, outbox=outbox, principal=principal, grant_id=grant_id,
                                   data=body, by="programme"), GrantPublic.model_validate, headers=_etag)


@grants.post("/{grant_id}/withdrawal", response_model=GrantPublic, responses=TRANSITION)
async def withdraw_grant_application(grant_id: str, body: Cancellation, session: SessionDep, outbox: OutboxDep,
                                     principal: Applicant, idem: IdempotencyDep) -> JSONResponse:
    """The applicant withdraws a submitted or approved grant (the approved amount returns to the call)."""
    return await idem.once(svc.end(session=session, outbox=outbox, principal=principal, grant_id=grant_id,
                                   data=body, by="applicant"), GrantPublic.model_validate, headers=_etag)


@grants.post("/{grant_id}/disbursements", status_code=201, response_model=DisbursementPublic,
             responses={409: {"description": "Over the approved amount, monitoring visit needed, status, consent "
                                             "withdrawn, or changed concurrently"}, **PEER})
async def disburse_grant(grant_id: str, body: DisbursementCreate, session: SessionDep, outbox: OutboxDep,
                         principal: Manager, peers: BeneficiariesDep, idem: IdempotencyDep) -> JSONResponse:
    """Pay a tranche (`status` becomes `disbursing`, then `fully_disbursed` at the approved amount).

    More than the approved amount in total is 409; when the call requires it, a tranche after the first
    is 409 until a monitoring visit since the previous tranche shows the business operating. Send an
    `Idempotency-Key`: a replay pays nothing twice.
    """
    return await idem.once(svc.disburse(session=session, outbox=outbox, principal=principal, peers=peers,
                                        grant_id=grant_id, data=body), DisbursementPublic.model_validate,
                           status_code=201)


@grants.get("/{grant_id}/disbursements", response_model=list[DisbursementPublic])
async def list_disbursements(grant_id: str, session: SessionDep, principal: Reader) -> list[DisbursementPublic]:
    """The grant's disbursements, reversed ones included (with `reversed_on`)."""
    rows = await svc.list_disbursements(session=session, principal=principal, grant_id=grant_id)
    return [DisbursementPublic.model_validate(r) for r in rows]


@grants.post("/{grant_id}/disbursements/{disbursement_id}/reversal", response_model=DisbursementPublic,
             responses=TRANSITION)
async def reverse_disbursement(grant_id: str, disbursement_id: str, body: Reversal, session: SessionDep,
                               outbox: OutboxDep, principal: Manager, idem: IdempotencyDep) -> JSONResponse:
    """Reverse a disbursement with a reason; the grant's totals, its status and the indicators follow."""
    return await idem.once(svc.reverse(session=session, outbox=outbox, principal=principal, grant_id=grant_id,
                                       disbursement_id=disbursement_id, data=body), DisbursementPublic.model_validate)


@grants.post("/{grant_id}/support-sessions", status_code=201, response_model=SupportSessionPublic,
             responses=TRANSITION)
async def add_support_session(grant_id: str, body: SupportSessionCreate, session: SessionDep, principal: Supporter,
                              idem: IdempotencyDep) -> JSONResponse:
    """Record a coaching or mentoring session for an approved grant's business."""
    return await idem.once(svc.add_support_session(session=session, principal=principal, grant_id=grant_id,
                                                   data=body), SupportSessionPublic.model_validate, status_code=201)


@grants.get("/{grant_id}/support-sessions", response_model=list[SupportSessionPublic])
async def list_support_sessions(grant_id: str, session: SessionDep, principal: Reader) -> list[SupportSessionPublic]:
    rows = await svc.list_support_sessions(session=session, principal=principal, grant_id=grant_id)
    return [SupportSessionPublic.model_validate(r) for r in rows]


@grants.post("/{grant_id}/monitoring-visits", status_code=201, response_model=MonitoringVisitPublic,
             responses=TRANSITION)
async def record_monitoring_visit(grant_id: str, body: MonitoringVisitCreate, session: SessionDep, outbox: OutboxDep,
                                  principal: Monitor, idem: IdempotencyDep) -> JSONResponse:
    """Record a monitoring visit to an approved grant's business (GPS point and notes stay here)."""
    return await idem.once(svc.record_visit(session=session, outbox=outbox, principal=principal, grant_id=grant_id,
                                            data=body), MonitoringVisitPublic.model_validate, status_code=201)


@grants.get("/{grant_id}/monitoring-visits", response_model=list[MonitoringVisitPublic])
async def list_monitoring_visits(grant_id: str, session: SessionDep, principal: Reader) -> list[MonitoringVisitPublic]:
    rows = await svc.list_visits(session=session, principal=principal, grant_id=grant_id)
    return [MonitoringVisitPublic.model_validate(r) for r in rows]


routers = (calls, grants)
