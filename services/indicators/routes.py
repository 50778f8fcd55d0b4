"""HTTP routes of the indicators service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from services.indicators import exports
from services.indicators import service as svc
from services.indicators.schemas import (
    Breakdown,
    DeadLetterPublic,
    PeriodCreate,
    PeriodPublic,
    PublicSummary,
    Summary,
    TargetPublic,
    TargetSet,
)
from shared.auth import CurrentPrincipal, Principal, require_roles
from shared.consumer import list_dead_letters, replay_dead_letter
from shared.db import SessionDep, one_snapshot
from shared.errors import Conflict, Forbidden, NotFound, Unprocessable

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
async def get_indicator_summary(session: SessionDep, principal: CurrentPrincipal,
                      governorate: GovernorateQuery = None) -> Summary:
    """The programme's headline figures, for your governorates or one of them (all read in one snapshot)."""
    await one_snapshot(session)
    return Summary(**await svc.summary(session=session, governorates=_scope(principal, governorate)))


IndicatorQuery = Annotated[Literal["beneficiaries_registered", "individuals_directly_assisted"],
                          Query(description="The person indicator to break down.")]
ByQuery = Annotated[str, Query(examples=["sex,age_group"], description="Comma-separated dimensions, at most "
                               f"{svc.MAX_DIMENSIONS}: " + ", ".join(svc.DIMENSIONS))]
FromQuery = Annotated[date | None, Query(alias="from", description="First day of the window (inclusive).")]
ToQuery = Annotated[date | None, Query(alias="to", description="Last day of the window (inclusive).")]
Manager = require_roles("programme_manager", "me_officer")


def _dimensions(by: str, allowed: Sequence[str] = svc.DIMENSIONS, most: int = svc.MAX_DIMENSIONS) -> list[str]:
    dims = [d.strip() for d in by.split(",") if d.strip()]
    unknown = [d for d in dims if d not in allowed]
    if not dims or unknown or len(set(dims)) != len(dims) or len(dims) > most:
        raise Unprocessable(f"`by` takes at most {most} distinct dimensions among {', '.join(allowed)}",
                            errors=[{"loc": ["query", "by"], "msg": f"unknown, repeated or too many: {dims}"}])
    return dims


def _window(from_: date | None, to: date | None) -> None:
    if from_ is not None and to is not None and to < from_:
        raise Unprocessable("`to` is before `from`", errors=[{"loc": ["query", "to"], "msg": "before from"}])


@indicators.get("/breakdown", response_model=Breakdown)
async def get_indicator_breakdown(session: SessionDep, principal: CurrentPrincipal, indicator: IndicatorQuery,
                                  by: ByQuery, governorate: GovernorateQuery = None, from_: FromQuery = None,
                        to: ToQuery = None) -> Breakdown:
    """A person indicator disaggregated by up to three of: sex, age group, displacement status, disability,
    governorate, district, community, pillar, month. Each person counts once; people directly assisted are
    described at their first assistance (when, under which pillar, where it was given, age then); a value not
    known yet is `unknown`, so the cells sum to `total`. `from`/`to` keep people first assisted (or registered)
    in that window."""
    dims = _dimensions(by)
    _window(from_, to)
    try:
        items = await svc.breakdown(session=session, indicator=indicator, by=dims,
                                    governorates=_scope(principal, governorate), from_=from_, to=to)
    except svc.BreakdownError as exc:
        raise Unprocessable(str(exc), errors=[{"loc": ["query", "by"], "msg": str(exc)}]) from None
    return Breakdown(indicator=indicator, by=dims, items=items, total=sum(item["value"] for item in items))


@public.get("/breakdown", response_model=Breakdown)
async def get_public_indicator_breakdown(request: Request, session: SessionDep, indicator: IndicatorQuery,
                               by: Annotated[str, Query(examples=["sex"], description="One dimension: "
                                                        + ", ".join(svc.PUBLIC_DIMENSIONS))],
                               governorate: Annotated[str | None, Query(include_in_schema=False)] = None) -> Breakdown:
    """The whole programme's figure by one dimension, for anyone. Every value of the dimension is listed;
    cells under the threshold (5 by default) and the complementary cells that protect them are `null` with
    `"suppressed": true`, so that no hidden cell can be worked out from the others, the total or another
    public output (method: docs/CONTRACT.md)."""
    dims = _dimensions(by, svc.PUBLIC_DIMENSIONS, 1)
    if governorate is not None:  # a table per governorate would let its cells be subtracted from the national one
        raise Unprocessable("Public breakdowns cover the whole programme; break down by governorate instead",
                            errors=[{"loc": ["query", "governorate"], "msg": "not allowed in public breakdowns"}])
    try:
        table = await svc.public_breakdown(session=session, indicator=indicator, dimension=dims[0],
                                           threshold=request.app.state.settings.public_suppression_threshold)
    except svc.BreakdownError as exc:
        raise Unprocessable(str(exc), errors=[{"loc": ["query", "by"], "msg": str(exc)}]) from None
    return Breakdown(indicator=indicator, by=dims, **table)


# -- the logframe: reporting periods and targets ---------------------------------------------------
@indicators.get("/periods", response_model=list[PeriodPublic])
async def list_reporting_periods(session: SessionDep, principal: CurrentPrincipal) -> list[PeriodPublic]:
    """The reporting periods, oldest first."""
    return [PeriodPublic.model_validate(p, from_attributes=True) for p in await svc.list_periods(session=session)]


@indicators.post("/periods", response_model=PeriodPublic, status_code=201,
                 responses={409: {"description": "A period with this code exists (problem+json)"}})
async def create_reporting_period(body: PeriodCreate, session: SessionDep, principal: Manager) -> PeriodPublic:
    """Add a reporting period (programme managers, M&E officers). Periods may overlap (a year and its
    quarters)."""
    try:
        period = await svc.create_period(session=session, code=body.code, starts_on=body.starts_on,
                                         ends_on=body.ends_on)
    except svc.PeriodExists:
        raise Conflict(f"A period {body.code} exists", slug="period-exists") from None
    return PeriodPublic.model_validate(period, from_attributes=True)


@indicators.post("/periods/{code}/freeze", response_model=PeriodPublic,
                 responses={404: {"description": "No such period"}, 409: {"description": "Frozen already"}})
async def freeze_reporting_period(code: str, session: SessionDep, principal: Manager) -> PeriodPublic:
    """Freeze a period: its figures are stored now and never change; events that arrive later for it count
    in the current period and are listed as `adjustments` in the summary."""
    try:
        period = await svc.freeze_period(session=session, code=code, by=principal.sub)
    except svc.PeriodNotFound:
        raise NotFound(f"No period {code}") from None
    except svc.PeriodFrozen:
        raise Conflict(f"The period {code} is frozen already", slug="period-frozen") from None
    return PeriodPublic.model_validate(period, from_attributes=True)


@indicators.put("/targets", response_model=TargetPublic,
                responses={404: {"description": "No such period"}, 409: {"description": "The period is frozen"}})
async def set_indicator_target(body: TargetSet, session: SessionDep, principal: Manager) -> TargetPublic:
    """Set (or replace) the target of an indicator for a period, for the whole programme or one governorate
    (programme managers, M&E officers; a programme-wide target needs a token for every governorate)."""
    if body.governorate is None and principal.scope_filter() is not None:
        raise Forbidden("A programme-wide target needs a token for every governorate")
    _scope(principal, body.governorate)
    try:
        row = await svc.set_target(session=session, indicator=body.indicator, period_code=body.period,
                                   governorate=body.governorate, target=body.target, by=principal.sub)
    except svc.PeriodNotFound:
        raise NotFound(f"No period {body.period}") from None
    except svc.PeriodFrozen:
        raise Conflict(f"The period {body.period} is frozen: its targets no longer change",
                       slug="period-frozen") from None
    return TargetPublic(indicator=row.indicator, period=row.period_code,
                        governorate=None if row.scope == svc.ALL else row.scope, target=row.target)


@indicators.get("/dead-letters", response_model=list[DeadLetterPublic])
async def list_indicator_dead_letters(session: SessionDep, principal: Operator) -> list[DeadLetterPublic]:
    """Events the projections could not apply after every retry (admin only)."""
    return [DeadLetterPublic.model_validate(d, from_attributes=True) for d in await list_dead_letters(session)]


@indicators.post("/dead-letters/{dead_letter_id}/replay")
async def replay_indicator_dead_letter(dead_letter_id: int, request: Request, session: SessionDep,
                                       principal: Operator) -> dict[str, bool]:
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
async def get_public_indicator_summary(request: Request, session: SessionDep,
                             governorate: GovernorateQuery = None) -> PublicSummary:
    """The headline figures for anyone, no token needed. People directly assisted are suppressed (`null`)
    exactly as in the public breakdown by governorate, so no public output reveals a hidden cell."""
    await one_snapshot(session)
    return PublicSummary(**await svc.public_summary(
        session=session, governorate=governorate,
        threshold=request.app.state.settings.public_suppression_threshold))


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
async def export_indicators_csv(session: SessionDep, principal: Reporter,
                                governorate: GovernorateQuery = None) -> Response:
    """The figures as CSV: one row per governorate (of your scope) and indicator, with people indicators
    disaggregated by sex and age group and by displacement status (roles `me_officer`, `programme_manager`,
    `viewer`)."""
    rows = await exports.table(session=session, governorates=_scope(principal, governorate))
    return _download(exports.to_csv(rows, hxl=False), CSV, "crp-indicators.csv")


@indicators.get("/export.hxl.csv", response_class=Response, responses=_export_responses("text/csv"))
async def export_indicators_hxl(session: SessionDep, principal: Reporter,
                                governorate: GovernorateQuery = None) -> Response:
    """The same table with an HXL hashtag row under the headers (`#adm1+code`, `#indicator+code`,
    `#indicator+num`, `#reached+f+adults`, `#reached+idps`, ...), for the Humanitarian Data Exchange."""
    rows = await exports.table(session=session, governorates=_scope(principal, governorate))
    return _download(exports.to_csv(rows, hxl=True), CSV, "crp-indicators.hxl.csv")


@indicators.get("/export.iati.xml", response_class=Response, responses=_export_responses("application/xml"))
async def export_indicators_iati(request: Request, session: SessionDep, principal: Reporter,
                      governorate: GovernorateQuery = None) -> Response:
    """The figures as IATI 2.03 `result`/`indicator`/`period` elements of the programme's activity: the
    `actual` of each indicator from the programme's start to the day of the figures, with `dimension`s by
    governorate, sex and displacement status."""
    body = await exports.iati(session=session, settings=request.app.state.settings,
                              governorates=_scope(principal, governorate))
    return _download(body, "application/xml", "crp-iati-results.xml")
