"""HTTP routes of the indicators service."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from services.indicators import service as svc
from services.indicators.schemas import Breakdown, DeadLetterPublic, PublicSummary, Summary
from shared.auth import CurrentPrincipal, Principal, require_roles
from shared.consumer import list_dead_letters, replay_dead_letter
from shared.db import SessionDep
from shared.errors import NotFound, Unprocessable

Operator = require_roles()  # admin only

indicators = APIRouter(prefix="/api/v1/indicators", tags=["indicators"])
public = APIRouter(prefix="/api/v1/public/indicators", tags=["public"])

GovernorateQuery = Annotated[str | None, Query(pattern=r"^IQG\d{2}$", examples=["IQG15"],
                                               description="Restrict to one governorate (admin1 P-code).")]


def _scope(principal: Principal | None, governorate: str | None) -> frozenset[str] | None:
    """The governorates a figure covers: the asked one, within the caller's scope (else 404)."""
    allowed = principal.scope_filter() if principal is not None else None
    if governorate is None:
        return allowed
    if allowed is not None and governorate not in allowed:
        raise NotFound(f"No figures for {governorate} within your governorates")
    return frozenset({governorate})


@indicators.get("/summary", response_model=Summary)
async def get_summary(session: SessionDep, principal: CurrentPrincipal,
                      governorate: GovernorateQuery = None) -> Summary:
    """The programme's headline figures, for your governorates or one of them."""
    return Summary(**await svc.summary(session=session, governorates=_scope(principal, governorate)))


IndicatorQuery = Annotated[Literal["beneficiaries_registered", "individuals_directly_assisted"],
                          Query(description="The person indicator to break down.")]
ByQuery = Annotated[str, Query(examples=["sex,age_group"], description="Comma-separated dimensions: "
                               + ", ".join(svc.DIMENSIONS))]

SUPPRESS_BELOW = 5


def _dimensions(by: str) -> list[str]:
    dims = [d.strip() for d in by.split(",") if d.strip()]
    unknown = [d for d in dims if d not in svc.DIMENSIONS]
    if not dims or unknown or len(set(dims)) != len(dims):
        raise Unprocessable(f"`by` takes distinct dimensions among {', '.join(svc.DIMENSIONS)}",
                            errors=[{"loc": ["query", "by"], "msg": f"unknown or repeated: {unknown or dims}"}])
    return dims


@indicators.get("/breakdown", response_model=Breakdown)
async def get_breakdown(session: SessionDep, principal: CurrentPrincipal, indicator: IndicatorQuery, by: ByQuery,
                        governorate: GovernorateQuery = None) -> Breakdown:
    """A person indicator disaggregated by sex, age group, displacement status, place or month."""
    dims = _dimensions(by)
    items = await svc.breakdown(session=session, indicator=indicator, by=dims,
                                governorates=_scope(principal, governorate))
    return Breakdown(indicator=indicator, by=dims, items=items)


@public.get("/breakdown", response_model=Breakdown)
async def get_public_breakdown(session: SessionDep, indicator: IndicatorQuery, by: ByQuery,
                               governorate: GovernorateQuery = None) -> Breakdown:
    """The same for anyone; cells under 5 people are `null` with `"suppressed": true`."""
    dims = _dimensions(by)
    items = await svc.breakdown(session=session, indicator=indicator, by=dims, governorates=_scope(None, governorate))
    for item in items:
        if item["value"] < SUPPRESS_BELOW:
            item.update(value=None, suppressed=True)
    return Breakdown(indicator=indicator, by=dims, items=items)


@indicators.get("/dead-letters", response_model=list[DeadLetterPublic])
async def get_dead_letters(session: SessionDep, principal: Operator) -> list[DeadLetterPublic]:
    """Events the projections could not apply after every retry (admin only)."""
    return [DeadLetterPublic.model_validate(d, from_attributes=True) for d in await list_dead_letters(session)]


@indicators.post("/dead-letters/{dead_letter_id}/replay")
async def replay(dead_letter_id: int, request: Request, session: SessionDep, principal: Operator) -> dict[str, bool]:
    """Apply a dead-lettered event again; on success the record is removed (admin only)."""
    try:
        applied = await replay_dead_letter(session=session, applier=request.app.state.applier,
                                           dead_letter_id=dead_letter_id)
    except LookupError:
        raise NotFound(f"No dead letter {dead_letter_id}") from None
    except ValueError as exc:
        raise Unprocessable(f"The dead letter cannot be parsed as an event: {exc}") from None
    return {"applied": applied}


@public.get("/summary", response_model=PublicSummary)
async def get_public_summary(session: SessionDep, governorate: GovernorateQuery = None) -> PublicSummary:
    """The headline figures for anyone, no token needed."""
    return PublicSummary(**await svc.summary(session=session, governorates=_scope(None, governorate)))


routers = (indicators, public)
