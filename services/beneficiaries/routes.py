"""HTTP routes of the beneficiaries service: thin, the domain logic is in service.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from services.beneficiaries import gazetteer
from services.beneficiaries import service as svc
from services.beneficiaries.models import Beneficiary, Community, DuplicateReview
from services.beneficiaries.registrations import Registration
from services.beneficiaries.schemas import (
    AreaPublic,
    BeneficiaryCreate,
    BeneficiaryPublic,
    BeneficiaryUpdate,
    CommunityCreate,
    CommunityPublic,
    ConsentWithdrawal,
    DisplacementStatus,
    DistrictPublic,
    DuplicateDecision,
    DuplicateReviewPublic,
    DuplicateReviewSummary,
    ErasureRequest,
    HouseholdCreate,
    HouseholdPublic,
    MergeRequest,
    RescanResult,
)
from shared.auth import CurrentPrincipal, require_roles
from shared.db import ReadsDep, SessionDep
from shared.errors import Unprocessable
from shared.etag import check_if_match, make_etag
from shared.idempotency import IdempotencyDep, UnboundIdempotencyDep
from shared.outbox import OutboxDep
from shared.pagination import CursorQuery, LimitQuery, Page, paginate
from shared.peers import erase_elsewhere
from shared.responses import json_response
from shared.urls import public_url

Registrar = require_roles("programme_manager", "case_worker", "partner_system")
Reader = require_roles("programme_manager", "case_worker", "me_officer", "partner_system")
Manager = require_roles("programme_manager")
Eraser = require_roles("programme_manager")  # and admin
Admin = require_roles()

locations = APIRouter(prefix="/api/v1/locations", tags=["locations"])
communities = APIRouter(prefix="/api/v1/communities", tags=["communities"])
households = APIRouter(prefix="/api/v1/households", tags=["households"])
beneficiaries = APIRouter(prefix="/api/v1/beneficiaries", tags=["beneficiaries"])
reviews = APIRouter(prefix="/api/v1/duplicate-reviews", tags=["duplicate reviews"])


@locations.get("/governorates", response_model=list[AreaPublic])
async def list_governorates(principal: CurrentPrincipal) -> list[AreaPublic]:
    """Iraq's 18 governorates with their OCHA P-codes (IQG01..IQG18)."""
    return [AreaPublic(pcode=a.pcode, name_en=a.name_en) for a in gazetteer.governorates()]


@locations.get("/districts", response_model=list[DistrictPublic])
async def list_districts(principal: CurrentPrincipal,
                         governorate: Annotated[str | None, Query(examples=["IQG15"])] = None
                         ) -> list[DistrictPublic]:
    """Districts with their P-codes, optionally of one governorate."""
    if governorate is not None and not gazetteer.is_governorate(governorate):
        raise Unprocessable(f"unknown governorate P-code {governorate!r}",
                            errors=[{"loc": ["query", "governorate"], "msg": "unknown governorate"}])
    return [DistrictPublic(pcode=a.pcode, name_en=a.name_en, parent_pcode=a.parent_pcode)
            for a in gazetteer.districts(governorate)]


@communities.post("", status_code=201, response_model=CommunityPublic)
async def create_community(body: CommunityCreate, session: SessionDep, outbox: OutboxDep,
                           principal: Registrar, idem: IdempotencyDep) -> JSONResponse:
    """Create a community in a district; its governorate is derived from the district P-code."""
    return await idem.once(svc.create_community(session=session, outbox=outbox, principal=principal, data=body),
                           CommunityPublic.model_validate, status_code=201)


@communities.get("", response_model=Page[CommunityPublic])
async def list_communities(request: Request, response: Response, session: SessionDep,
                           principal: CurrentPrincipal, limit: LimitQuery = 50, cursor: CursorQuery = None,
                           governorate: str | None = None, district: str | None = None) -> Page[CommunityPublic]:
    """Communities in your governorates, newest first."""
    stmt = svc.list_communities_query(principal=principal, governorate=governorate, district=district)
    rows, next_cursor = await paginate(session, stmt, Community, limit=limit, cursor=cursor, request=request,
                                       response=response)
    return Page(items=[CommunityPublic.model_validate(r) for r in rows], next_cursor=next_cursor)


@communities.get("/{community_id}", response_model=CommunityPublic)
async def get_community(community_id: str, session: SessionDep, principal: CurrentPrincipal) -> CommunityPublic:
    """One community (404 when it does not exist or is outside your governorates)."""
    community = await svc.get_community(session=session, principal=principal, community_id=community_id)
    return CommunityPublic.model_validate(community)


@households.post("", status_code=201, response_model=HouseholdPublic)
async def create_household(body: HouseholdCreate, session: SessionDep, principal: Registrar,
                           idem: IdempotencyDep) -> JSONResponse:
    """Create a household in a community."""
    return await idem.once(svc.create_household(session=session, principal=principal, data=body),
                           HouseholdPublic.model_validate, status_code=201)


@households.get("/{household_id}", response_model=HouseholdPublic)
async def get_household(household_id: str, session: SessionDep, principal: Reader) -> HouseholdPublic:
    """One household (404 when it does not exist or is outside your governorates)."""
    household = await svc.get_household(session=session, principal=principal, household_id=household_id)
    return HouseholdPublic.model_validate(household)


@beneficiaries.post("", status_code=201, response_model=BeneficiaryPublic,
                    responses={409: {"description": "Probable duplicate (with `candidates`) or same national ID"}})
async def register_beneficiary(request: Request, body: BeneficiaryCreate, principal: Registrar,
                               idem: UnboundIdempotencyDep) -> JSONResponse:
    """Register a person with their informed consent.

    A probable duplicate of someone already registered anywhere in the country (same name chain, in any
    script or spelling, and birth year) is refused with 409 and `candidates` (`id`, `score`, `reasons`)
    among the records you may see, and `candidates_outside_scope`: how many others are registered outside
    your governorates (never who). Send the same body again with `"confirm_not_duplicate": true` to register
    anyway: each such pair then waits in the duplicate review queue for a programme manager. The same
    `national_id` twice is always 409.
    """
    def headers(b: Any) -> dict[str, str]:
        return {"ETag": make_etag(b.id, b.version), "Location": public_url(request, f"/api/v1/beneficiaries/{b.id}")}

    # Written with the registrations that arrived meanwhile, in one transaction (group commit), or alone.
    return await request.app.state.registrations.register(
        Registration(body, svc.Origin.current(principal), idem, headers))


@beneficiaries.get("", response_model=Page[BeneficiaryPublic])
async def list_beneficiaries(
    request: Request, response: Response, reads: ReadsDep, principal: Reader,
    limit: LimitQuery = 50, cursor: CursorQuery = None, community_id: str | None = None,
    governorate: str | None = None, displacement_status: DisplacementStatus | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Name search, Arabic or Latin; "
                                   "spelling variants (أحمد/احمد, Mohammed/Muhammad) find each other.")] = None,
    include_merged: bool = False,
    merged_into_id: Annotated[str | None, Query(description="Only the records folded into this one (merged "
                                                "records are then included).")] = None,
) -> Response:
    """Beneficiaries in your governorates, newest first."""
    stmt, params = svc.list_beneficiaries_query(principal=principal, community_id=community_id, governorate=governorate,
                                        displacement_status=displacement_status, q=q,
                                        include_merged=include_merged, merged_into_id=merged_into_id)
    rows, next_cursor = await paginate(reads, stmt, Beneficiary, limit=limit, cursor=cursor, request=request,
                                       response=response, rows_only=True, params=params)
    # The service's own rows, rendered once (shared.responses); response_model documents the shape.
    return json_response({"items": [svc.public_fields(r) for r in rows], "next_cursor": next_cursor},
                         response=response)


@beneficiaries.get("/{beneficiary_id}", response_model=BeneficiaryPublic)
async def get_beneficiary(beneficiary_id: str, reads: ReadsDep, principal: Reader) -> Response:
    """One beneficiary, with its `ETag` (404 when absent or outside your governorates)."""
    beneficiary = await svc.read_beneficiary(reads=reads, principal=principal, beneficiary_id=beneficiary_id)
    return json_response(svc.public_fields(beneficiary),  # rendered once (shared.responses)
                         headers={"ETag": make_etag(beneficiary.id, beneficiary.version)})


@beneficiaries.patch("/{beneficiary_id}", response_model=BeneficiaryPublic,
                     responses={412: {"description": "Stale If-Match"}, 428: {"description": "No If-Match"}})
async def update_beneficiary(request: Request, beneficiary_id: str, body: BeneficiaryUpdate, response: Response,
                             session: SessionDep, outbox: OutboxDep, principal: Registrar) -> BeneficiaryPublic:
    """Change some fields. Needs `If-Match` with the ETag you read (428 without, 412 when stale)."""
    beneficiary = await svc.get_beneficiary(session=session, principal=principal, beneficiary_id=beneficiary_id)
    check_if_match(request, make_etag(beneficiary.id, beneficiary.version))
    beneficiary = await svc.update(session=session, outbox=outbox, settings=request.app.state.settings,
                                   principal=principal, beneficiary=beneficiary, data=body)
    response.headers["ETag"] = make_etag(beneficiary.id, beneficiary.version)
    return svc.to_public(beneficiary)


@beneficiaries.post("/{beneficiary_id}/merge", response_model=BeneficiaryPublic)
async def merge_beneficiaries(beneficiary_id: str, body: MergeRequest, session: SessionDep, outbox: OutboxDep,
                              principal: Manager, idem: IdempotencyDep) -> JSONResponse:
    """Fold `duplicate_id` into this record; every service and indicator then counts them as one person."""
    return await idem.once(svc.merge(session=session, outbox=outbox, principal=principal,
                                     survivor_id=beneficiary_id, duplicate_id=body.duplicate_id),
                           svc.to_public, headers=lambda b: {"ETag": make_etag(b.id, b.version)})


@beneficiaries.post("/{beneficiary_id}/consent-withdrawal", response_model=BeneficiaryPublic,
                    responses={409: {"description": "Consent already withdrawn, record merged, or changed "
                                                    "concurrently"},
                               412: {"description": "Stale If-Match (optional)"}})
async def withdraw_consent(request: Request, beneficiary_id: str, body: ConsentWithdrawal, session: SessionDep,
                           outbox: OutboxDep, principal: Registrar, idem: IdempotencyDep) -> JSONResponse:
    """Record that the person withdrew their informed consent.

    The record stays (with `consent.given: false` and `withdrawn_on`); from then on the other services
    refuse new assistance for this person (409). Figures already reported are not changed. Withdrawing
    twice is 409. `If-Match` is optional (412 when stale). The `reason` stays on this record only.
    """
    if replay := await idem.replay():
        return replay
    beneficiary = await svc.get_beneficiary(session=session, principal=principal, beneficiary_id=beneficiary_id)
    check_if_match(request, make_etag(beneficiary.id, beneficiary.version), required=False)
    beneficiary = await svc.withdraw_consent(session=session, outbox=outbox, principal=principal,
                                             beneficiary=beneficiary, data=body)
    return await idem.respond(svc.to_public(beneficiary),
                              headers={"ETag": make_etag(beneficiary.id, beneficiary.version)})


@beneficiaries.post("/{beneficiary_id}/erasure", response_model=BeneficiaryPublic,
                    responses={409: {"description": "Already erased, or changed concurrently"},
                               503: {"description": "A service holding the person's data cannot be reached; "
                                                    "nothing was erased"}})
async def erase_beneficiary(request: Request, beneficiary_id: str, body: ErasureRequest, session: SessionDep,
                            outbox: OutboxDep, principal: Eraser, idem: IdempotencyDep) -> JSONResponse:
    """Erase the person's personal data on their request: names, phone, national-ID hash, exact birth date
    (1 January of the birth year remains) and the consent note are cleared for good, here and (through the
    `crp.beneficiaries.beneficiary.erased.v1` event) in every service that holds any. The record stays as an
    anonymous count, so the programme's figures do not change. Audited (who and when, never values); twice is 409.
    """
    if replay := await idem.replay():
        return replay
    beneficiary = await svc.get_beneficiary(session=session, principal=principal, beneficiary_id=beneficiary_id)
    if beneficiary.erased_on is None:
        for record in await svc.records_of_person(session=session, beneficiary=beneficiary):
            await erase_elsewhere(request, record.id)
    beneficiary = await svc.erase(session=session, outbox=outbox, principal=principal, beneficiary=beneficiary,
                                  data=body)
    return await idem.respond(svc.to_public(beneficiary),
                              headers={"ETag": make_etag(beneficiary.id, beneficiary.version)})


@reviews.get("", response_model=Page[DuplicateReviewPublic])
async def list_duplicate_reviews(
    request: Request, response: Response, session: SessionDep, principal: Manager, limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: Annotated[Literal["open", "distinct", "merged"] | None,
                      Query(description="Default `open`: waiting, with both records unmerged.")] = "open",
) -> Page[DuplicateReviewPublic]:
    """Probable duplicate pairs, both records side by side with the reasons, newest first. Only pairs whose two
    records are in your governorates are listed."""
    stmt = svc.list_reviews_query(principal=principal, status=status)
    rows, next_cursor = await paginate(session, stmt, DuplicateReview, limit=limit, cursor=cursor, request=request,
                                       response=response)
    records = await svc.review_pairs(session=session, reviews=rows)
    return Page(items=[svc.review_public(r, records) for r in rows], next_cursor=next_cursor)


@reviews.get("/summary", response_model=DuplicateReviewSummary)
async def get_duplicate_review_summary(session: SessionDep, principal: Manager) -> DuplicateReviewSummary:
    """The queue in figures for your governorates: open, decided (distinct, merged), median age of the open
    pairs and median time to a decision."""
    return await svc.review_summary(session=session, principal=principal)


@reviews.post("/rescan", response_model=RescanResult)
async def rescan_duplicates(session: SessionDep, principal: Admin) -> RescanResult:
    """Re-run duplicate detection over the whole registry with the current rules and queue the probable pairs
    not listed yet (idempotent; decided pairs stay decided). Also `crp beneficiaries rescan`."""
    return await svc.rescan_duplicates(session=session)


@reviews.get("/{review_id}", response_model=DuplicateReviewPublic)
async def get_duplicate_review(review_id: str, session: SessionDep, principal: Manager) -> DuplicateReviewPublic:
    """One pair (404 when absent or when either record is outside your governorates)."""
    review, records = await svc.get_review(session=session, principal=principal, review_id=review_id)
    return svc.review_public(review, records)


@reviews.post("/{review_id}/decision", response_model=DuplicateReviewPublic,
              responses={409: {"description": "Already decided, or a record was merged meanwhile"}})
async def decide_duplicate_review(review_id: str, body: DuplicateDecision, session: SessionDep, outbox: OutboxDep,
                                  principal: Manager, idem: IdempotencyDep) -> JSONResponse:
    """Decide a pair once: `distinct` (two people: the pair is never flagged again) or `merge` with
    `survivor_id` (one person: the other record is folded into it exactly as by
    `POST /api/v1/beneficiaries/{id}/merge`, with its event). Audited."""

    async def decide() -> DuplicateReviewPublic:
        review, records = await svc.decide_review(session=session, outbox=outbox, principal=principal,
                                                  review_id=review_id, data=body)
        return svc.review_public(review, records)

    return await idem.once(decide(), lambda public: public)


routers = (locations, communities, households, beneficiaries, reviews)
