"""HTTP routes of the indicators service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.indicators import service as svc
from services.indicators.schemas import DeadLetterPublic, PublicSummary, Summary
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
