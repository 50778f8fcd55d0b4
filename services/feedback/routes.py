"""HTTP routes of the feedback service: thin, the domain logic is in service.py.

Roles (``admin`` passes every guard, but sees no sensitive case):

- submit feedback: ``cfm_officer``, ``case_worker``, ``partner_system`` (hotline, SMS and WhatsApp systems),
  ``programme_manager``, ``psea_focal_point``;
- read, list and act on cases: ordinary ones ``cfm_officer``, ``programme_manager``, ``admin``; sensitive ones
  (``sea``, ``fraud_corruption``, ``staff_misconduct``) ``psea_focal_point`` only: for everyone else they do not
  exist (404, absent from lists and counts);
- counts by category, status or channel and the service levels: also ``me_officer`` and ``viewer`` (ordinary
  cases only);
- resource centres: ``programme_manager`` creates and edits; every role reads;
- community activities: ``programme_manager`` and ``case_worker`` record; they, ``cfm_officer``,
  ``me_officer`` and ``viewer`` read;
- the public status page needs no token: the reference and its PIN.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from services.feedback import service as svc
from services.feedback.config import FeedbackSettings
from services.feedback.models import CommunityActivity, Feedback, ResourceCentre
from services.feedback.schemas import (
    AuditLine,
    CommunityActivityCreate,
    CommunityActivityPublic,
    Counts,
    FeedbackCreate,
    FeedbackPublic,
    FeedbackReceipt,
    FeedbackSummary,
    HistoryEntry,
    PinReset,
    PublicStatus,
    ReferralCreate,
    ResourceCentreCreate,
    ResourceCentrePublic,
    ResourceCentreUpdate,
    ResponseCreate,
    ServiceLevelPublic,
    StatusChange,
)
from shared.auth import require_roles
from shared.db import ReadsDep, SessionDep, utcnow, will_write
from shared.etag import check_if_match, make_etag
from shared.events.feedback import ActivityKind, Category, Channel, FeedbackStatus
from shared.idempotency import IdempotencyDep
from shared.outbox import OutboxDep
from shared.pagination import CursorQuery, LimitQuery, Page, paginate
from shared.peers import BeneficiariesDep
from shared.urls import public_url, request_client_address

Intake = require_roles("cfm_officer", "case_worker", "partner_system", "programme_manager", "psea_focal_point")
CaseHandler = require_roles("cfm_officer", "programme_manager", "psea_focal_point")
CountReader = require_roles("cfm_officer", "programme_manager", "psea_focal_point", "me_officer", "viewer")
CentreManager = require_roles("programme_manager")
CentreReader = require_roles("programme_manager", "cfm_officer", "psea_focal_point", "case_worker", "me_officer",
                             "viewer", "partner_system")
ActivityRecorder = require_roles("programme_manager", "case_worker")
ActivityReader = require_roles("programme_manager", "case_worker", "cfm_officer", "me_officer", "viewer")

UNAVAILABLE = {503: {"description": "The beneficiaries service cannot be reached; nothing was stored"}}
NOT_FOUND = {404: {"description": "No such record that you may see"}}
CONFLICT = {409: {"description": "The case's status does not allow it, or it changed concurrently"}}


def get_now(request: Request) -> datetime:
    """The service's one clock (``app.state.clock`` when set: tests move it)."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else utcnow()


def get_settings(request: Request) -> FeedbackSettings:
    return request.app.state.settings


Now = Annotated[datetime, Depends(get_now)]
Settings = Annotated[FeedbackSettings, Depends(get_settings)]

feedback = APIRouter(prefix="/api/v1/feedback", tags=["feedback"])
public = APIRouter(prefix="/api/v1/public/feedback", tags=["feedback"])
centres = APIRouter(prefix="/api/v1/resource-centres", tags=["resource centres"])
activities = APIRouter(prefix="/api/v1/community-activities", tags=["community activities"])


def _etag(row: Feedback | ResourceCentre | Any) -> dict[str, str]:
    return {"ETag": make_etag(row.id, row.version)}


# -- feedback ---------------------------------------------------------------------------------------
@feedback.post("", status_code=201, response_model=FeedbackReceipt, responses=UNAVAILABLE)
async def submit_feedback(request: Request, body: FeedbackCreate, session: SessionDep, outbox: OutboxDep,
                          principal: Intake, peers: BeneficiariesDep, idem: IdempotencyDep, settings: Settings,
                          now: Now) -> JSONResponse:
    """Take in feedback or a complaint from any channel. The answer carries the case's `reference` and a secret
    `pin`, shown this once: with both, the person follows the case at `/api/v1/public/feedback/{reference}/status`
    without an account. `anonymous: true` keeps no identity (no contact). Sensitive categories (`sea`,
    `fraud_corruption`, `staff_misconduct`) are seen only by the PSEA focal point."""
    replay = await idem.replay()
    if replay is not None:
        return replay
    case, pin = await svc.submit(session=session, outbox=outbox, principal=principal, peers=peers, settings=settings,
                                 now=now, data=body)
    receipt = FeedbackReceipt(id=case.id, reference=case.reference, pin=None, status="received",
                              category=case.category, sensitive=case.sensitive,  # type: ignore[arg-type]
                              received_at=case.received_at, acknowledge_due_at=case.acknowledge_due_at,
                              resolve_due_at=case.resolve_due_at)
    headers = {**_etag(case), "Location": public_url(request, f"/api/v1/feedback/{case.id}")}
    await idem.respond(receipt, status_code=201, headers=headers)  # a replay never shows the PIN again
    return JSONResponse(jsonable_encoder(receipt.model_copy(update={"pin": pin})), status_code=201, headers=headers)


@feedback.get("", response_model=Page[FeedbackSummary])
async def list_feedback(request: Request, response: Response, reads: ReadsDep, principal: CaseHandler,
                        now: Now, limit: LimitQuery = 50, cursor: CursorQuery = None,
                        status: FeedbackStatus | None = None, category: Category | None = None,
                        channel: Channel | None = None, community_id: str | None = None,
                        governorate: str | None = None, resource_centre_id: str | None = None,
                        received_from: datetime | None = None, received_to: datetime | None = None,
                        overdue: bool | None = None) -> Page[FeedbackSummary]:
    """Cases you may see in your governorates, newest first, without their text (read a case for that)."""
    stmt, params = svc.list_feedback_query(
        principal=principal, now=now, status=status, category=category, channel=channel, community_id=community_id,
        governorate=governorate, resource_centre_id=resource_centre_id, received_from=received_from,
        received_to=received_to, overdue=overdue)
    rows, next_cursor = await paginate(reads, stmt, Feedback, limit=limit, cursor=cursor, request=request,
                                       response=response, rows_only=True, params=params)
    return Page(items=[svc.to_summary(r, now) for r in rows], next_cursor=next_cursor)


@feedback.get("/overdue", response_model=Page[FeedbackSummary])
async def list_overdue_feedback(request: Request, response: Response, reads: ReadsDep, principal: CaseHandler,
                                now: Now, limit: LimitQuery = 50, cursor: CursorQuery = None,
                                governorate: str | None = None) -> Page[FeedbackSummary]:
    """Cases past a service level: not acknowledged by `acknowledge_due_at`, or not resolved by
    `resolve_due_at`."""
    stmt, params = svc.list_feedback_query(principal=principal, now=now, status=None, category=None, channel=None,
                                           community_id=None, governorate=governorate, resource_centre_id=None,
                                           received_from=None, received_to=None, overdue=True)
    rows, next_cursor = await paginate(reads, stmt, Feedback, limit=limit, cursor=cursor, request=request,
                                       response=response, rows_only=True, params=params)
    return Page(items=[svc.to_summary(r, now) for r in rows], next_cursor=next_cursor)


@feedback.get("/counts", response_model=Counts)
async def count_feedback(session: SessionDep, principal: CountReader,
                         by: Literal["category", "status", "channel"] = "category",
                         governorate: str | None = None) -> Counts:
    """How many cases you may see, by category, status or channel (sensitive cases are counted for the PSEA
    focal point only; the programme's aggregate is in the indicators summary)."""
    return await svc.counts(session=session, principal=principal, by=by, governorate=governorate)


@feedback.get("/service-levels", response_model=list[ServiceLevelPublic])
async def get_feedback_service_levels(principal: CountReader, settings: Settings) -> list[ServiceLevelPublic]:
    """Hours to acknowledge and to resolve, per category (configured with `CRP_FEEDBACK_SERVICE_LEVELS`)."""
    return svc.service_levels(settings, principal)


@feedback.get("/{feedback_id}", response_model=FeedbackPublic, responses=NOT_FOUND)
async def get_feedback(feedback_id: str, response: Response, session: SessionDep, principal: CaseHandler,
                       settings: Settings, now: Now) -> FeedbackPublic:
    """One case with its description, contact, response and referral. Every read is audited."""
    will_write()  # the audit of the read
    case = await svc.read_case(session=session, principal=principal, feedback_id=feedback_id)
    response.headers.update(_etag(case))
    return svc.to_public(settings, case, now)


@feedback.get("/{feedback_id}/history", response_model=list[HistoryEntry], responses=NOT_FOUND)
async def get_feedback_history(feedback_id: str, session: SessionDep, principal: CaseHandler,
                               settings: Settings) -> list[HistoryEntry]:
    """The case's dated steps, with their internal notes (audited as a read)."""
    will_write()
    return await svc.history(session=session, settings=settings, principal=principal, feedback_id=feedback_id)


@feedback.get("/{feedback_id}/audit", response_model=list[AuditLine], responses=NOT_FOUND)
async def get_feedback_audit(feedback_id: str, session: SessionDep, principal: CaseHandler) -> list[AuditLine]:
    """Who read and who changed the case, and when (field names only)."""
    rows = await svc.audit_trail(session=session, principal=principal, feedback_id=feedback_id)
    return [AuditLine(action=r.action, actor=r.actor, fields=json.loads(r.fields), at=r.at) for r in rows]


@feedback.post("/{feedback_id}/status", response_model=FeedbackSummary, responses={**NOT_FOUND, **CONFLICT})
async def change_feedback_status(request: Request, feedback_id: str, body: StatusChange, session: SessionDep,
                                 outbox: OutboxDep, principal: CaseHandler, idem: IdempotencyDep,
                                 settings: Settings, now: Now) -> JSONResponse:
    """Move the case on: received → acknowledged → in_progress ⇄ referred → resolved → closed (resolved may
    reopen to in_progress). `referred` names `referred_to` and `referral_consent`; `closed` needs a response
    first and takes the person's `satisfaction`. `If-Match` is optional (412 when stale). The answer carries no
    text (an `Idempotency-Key` keeps it): read the case for that."""
    async def work() -> FeedbackSummary:
        if request.headers.get("if-match") is not None:
            case = await svc.get_feedback(session=session, principal=principal, feedback_id=feedback_id)
            check_if_match(request, make_etag(case.id, case.version), required=False)
        case = await svc.change_status(session=session, outbox=outbox, principal=principal, settings=settings,
                                       now=now, feedback_id=feedback_id, data=body)
        return svc.to_summary(case, now)

    return await idem.once(work(), lambda c: c, headers=lambda c: {"ETag": make_etag(c.id, c.version)})


@feedback.post("/{feedback_id}/referral", response_model=FeedbackSummary, responses={**NOT_FOUND, **CONFLICT})
async def refer_feedback(feedback_id: str, body: ReferralCreate, session: SessionDep, outbox: OutboxDep,
                         principal: CaseHandler, idem: IdempotencyDep, settings: Settings, now: Now) -> JSONResponse:
    """Refer the case to another organisation or service (the same as status `referred`)."""
    change = StatusChange(status="referred", note=body.note, referred_to=body.referred_to,
                          referral_consent=body.consent)

    async def work() -> FeedbackSummary:
        case = await svc.change_status(session=session, outbox=outbox, principal=principal, settings=settings,
                                       now=now, feedback_id=feedback_id, data=change)
        return svc.to_summary(case, now)

    return await idem.once(work(), lambda c: c, headers=lambda c: {"ETag": make_etag(c.id, c.version)})


@feedback.post("/{feedback_id}/response", response_model=FeedbackSummary, responses={**NOT_FOUND, **CONFLICT})
async def respond_to_feedback(feedback_id: str, body: ResponseCreate, session: SessionDep, principal: CaseHandler,
                              idem: IdempotencyDep, settings: Settings, now: Now) -> JSONResponse:
    """The answer to the complainant: shown on the public status page (again replaces it; closed: 409)."""
    async def work() -> FeedbackSummary:
        case = await svc.respond(session=session, principal=principal, settings=settings, now=now,
                                 feedback_id=feedback_id, data=body)
        return svc.to_summary(case, now)

    return await idem.once(work(), lambda c: c, headers=lambda c: {"ETag": make_etag(c.id, c.version)})


@feedback.post("/{feedback_id}/pin", response_model=PinReset, responses=NOT_FOUND)
async def reset_feedback_pin(feedback_id: str, session: SessionDep, principal: CaseHandler, idem: IdempotencyDep,
                             settings: Settings, now: Now) -> JSONResponse:
    """A new PIN for a person who lost theirs (after checking who they are); the old PIN stops working. Shown
    once: an `Idempotency-Key` replay shows `pin: null`."""
    replay = await idem.replay()
    if replay is not None:
        return replay
    case, pin = await svc.reset_pin(session=session, principal=principal, settings=settings, now=now,
                                    feedback_id=feedback_id)
    await idem.respond(PinReset(reference=case.reference, pin=None))
    return JSONResponse(jsonable_encoder(PinReset(reference=case.reference, pin=pin)))


# -- the public status page -------------------------------------------------------------------------
@public.get("/{reference}/status", response_model=PublicStatus, responses={
    404: {"description": "No case with this reference and PIN (a wrong PIN answers the same)"},
    429: {"description": "Too many wrong PINs for this reference or from this address: wait `Retry-After`"}})
async def get_public_feedback_status(request: Request, reference: str, settings: Settings, now: Now,
                                     pin: Annotated[str | None, Header(alias="X-Feedback-PIN")] = None
                                     ) -> PublicStatus:
    """The status of a case and the response to it, for whoever holds its reference and PIN (no account, no
    token). Internal notes are never shown. Wrong PINs are throttled per reference and per client address."""
    will_write()  # a wrong PIN is recorded
    return await svc.public_status(sessionmaker=request.app.state.sessionmaker, settings=settings, now=now,
                                   reference=reference, pin=pin, client=request_client_address(request))


# -- resource centres -------------------------------------------------------------------------------
@centres.post("", status_code=201, response_model=ResourceCentrePublic, responses=UNAVAILABLE)
async def create_resource_centre(request: Request, body: ResourceCentreCreate, session: SessionDep,
                                 outbox: OutboxDep, principal: CentreManager, peers: BeneficiariesDep,
                                 idem: IdempotencyDep) -> JSONResponse:
    """A community resource centre: where people get information, submit feedback and meet."""
    return await idem.once(
        svc.create_resource_centre(session=session, outbox=outbox, principal=principal, peers=peers, data=body),
        ResourceCentrePublic.model_validate, status_code=201,
        headers=lambda c: {**_etag(c), "Location": public_url(request, f"/api/v1/resource-centres/{c.id}")})


@centres.get("", response_model=Page[ResourceCentrePublic])
async def list_resource_centres(request: Request, response: Response, reads: ReadsDep, principal: CentreReader,
                                limit: LimitQuery = 50, cursor: CursorQuery = None, community_id: str | None = None,
                                governorate: str | None = None,
                                active: bool | None = None) -> Page[ResourceCentrePublic]:
    """Resource centres in your governorates, newest first."""
    stmt, params = svc.list_resource_centres_query(principal=principal, community_id=community_id,
                                                   governorate=governorate, active=active)
    rows, next_cursor = await paginate(reads, stmt, ResourceCentre, limit=limit, cursor=cursor, request=request,
                                       response=response, rows_only=True, params=params)
    return Page(items=[ResourceCentrePublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@centres.get("/{centre_id}", response_model=ResourceCentrePublic, responses=NOT_FOUND)
async def get_resource_centre(centre_id: str, response: Response, reads: ReadsDep,
                              principal: CentreReader) -> ResourceCentrePublic:
    centre = await svc.read_resource_centre(reads=reads, principal=principal, centre_id=centre_id)
    response.headers.update(_etag(centre))
    return ResourceCentrePublic.model_validate(centre)


@centres.patch("/{centre_id}", response_model=ResourceCentrePublic,
               responses={**NOT_FOUND, 412: {"description": "Stale If-Match"}, 428: {"description": "No If-Match"}})
async def update_resource_centre(request: Request, centre_id: str, body: ResourceCentreUpdate, response: Response,
                                 session: SessionDep, outbox: OutboxDep,
                                 principal: CentreManager) -> ResourceCentrePublic:
    """Change a centre (e.g. `active: false` when it closes). Needs `If-Match` with its ETag."""
    centre = await svc.get_resource_centre(session=session, principal=principal, centre_id=centre_id)
    check_if_match(request, make_etag(centre.id, centre.version))
    centre = await svc.update_resource_centre(session=session, outbox=outbox, principal=principal, centre=centre,
                                              data=body)
    response.headers.update(_etag(centre))
    return ResourceCentrePublic.model_validate(centre)


# -- community activities ---------------------------------------------------------------------------
@activities.post("", status_code=201, response_model=CommunityActivityPublic, responses=UNAVAILABLE)
async def record_community_activity(request: Request, body: CommunityActivityCreate, session: SessionDep,
                                    outbox: OutboxDep, principal: ActivityRecorder, peers: BeneficiariesDep,
                                    idem: IdempotencyDep) -> JSONResponse:
    """A dialogue session, community-led reconciliation initiative, civic engagement or awareness event.
    Participants are counted (by sex and by group, never more than the total), not registered."""
    return await idem.once(
        svc.record_activity(session=session, outbox=outbox, principal=principal, peers=peers, data=body),
        svc.activity_public, status_code=201,
        headers=lambda a: {"Location": public_url(request, f"/api/v1/community-activities/{a.id}")})


@activities.get("", response_model=Page[CommunityActivityPublic])
async def list_community_activities(request: Request, response: Response, reads: ReadsDep,
                                    principal: ActivityReader, limit: LimitQuery = 50, cursor: CursorQuery = None,
                                    kind: ActivityKind | None = None, community_id: str | None = None,
                                    governorate: str | None = None, resource_centre_id: str | None = None,
                                    held_from: date | None = None,
                                    held_to: date | None = None) -> Page[CommunityActivityPublic]:
    """Community activities in your governorates, newest first."""
    stmt, params = svc.list_activities_query(principal=principal, kind=kind, community_id=community_id,
                                             governorate=governorate, resource_centre_id=resource_centre_id,
                                             held_from=held_from, held_to=held_to)
    rows, next_cursor = await paginate(reads, stmt, CommunityActivity, limit=limit, cursor=cursor,
                                       request=request, response=response, rows_only=True, params=params)
    return Page(items=[svc.activity_public(r) for r in rows], next_cursor=next_cursor)


@activities.get("/{activity_id}", response_model=CommunityActivityPublic, responses=NOT_FOUND)
async def get_community_activity(activity_id: str, reads: ReadsDep,
                                 principal: ActivityReader) -> CommunityActivityPublic:
    return svc.activity_public(await svc.read_activity(reads=reads, principal=principal, activity_id=activity_id))


routers = (feedback, public, centres, activities)
