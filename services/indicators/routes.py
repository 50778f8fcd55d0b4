"""HTTP routes of the indicators service."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from services.indicators import exports
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


# -- exports ---------------------------------------------------------------------------------------------
Reporter = require_roles("me_officer", "programme_manager", "viewer")
CSV = "text/csv; charset=utf-8"


def _download(body: str | bytes, media_type: str, filename: str) -> Response:
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _export_responses(media_type: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {media_type: {}}, "description": "The export"},
            404: {"description": "A governorate outside your scope (problem+json)"}}


@indicators.get("/export.csv", response_class=Response, responses=_export_responses("text/csv"))
async def export_csv(session: SessionDep, principal: Reporter, governorate: GovernorateQuery = None) -> Response:
    """The figures as CSV: one row per governorate (of your scope) and indicator, with people indicators
    disaggregated by sex and age group and by displacement status (roles `me_officer`, `programme_manager`,
    `viewer`)."""
    rows = await exports.table(session=session, governorates=_scope(principal, governorate))
    return _download(exports.to_csv(rows, hxl=False), CSV, "crp-indicators.csv")


@indicators.get("/export.hxl.csv", response_class=Response, responses=_export_responses("text/csv"))
async def export_hxl(session: SessionDep, principal: Reporter, governorate: GovernorateQuery = None) -> Response:
    """The same table with an HXL hashtag row under the headers (`#adm1+code`, `#indicator+code`,
    `#indicator+num`, `#reached+f+adults`, `#reached+idps`, ...), for the Humanitarian Data Exchange."""
    rows = await exports.table(session=session, governorates=_scope(principal, governorate))
    return _download(exports.to_csv(rows, hxl=True), CSV, "crp-indicators.hxl.csv")


@indicators.get("/export.iati.xml", response_class=Response, responses=_export_responses("application/xml"))
async def export_iati(request: Request, session: SessionDep, principal: Reporter,
                      governorate: GovernorateQuery = None) -> Response:
    """The figures as IATI 2.03 `result`/`indicator`/`period` elements of the programme's activity: the
    `actual` of each indicator from the programme's start to the day of the figures, with `dimension`s by
    governorate, sex and displacement status."""
    body = await exports.iati(session=session, settings=request.app.state.settings,
                              governorates=_scope(principal, governorate))
    return _download(body, "application/xml", "crp-iati-results.xml")


@public.get("/export.hxl.csv", response_class=Response, responses=_export_responses("text/csv"))
async def public_export_hxl(session: SessionDep, governorate: GovernorateQuery = None) -> Response:
    """The HXL table for anyone: counts of 1 to 4 people are blank, and so is a second cell wherever one
    blank could be worked out from the row's value."""
    rows = exports.suppress(await exports.table(session=session, governorates=_scope(None, governorate)))
    return _download(exports.to_csv(rows, hxl=True), CSV, "crp-indicators-public.hxl.csv")
