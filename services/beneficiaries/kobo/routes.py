"""HTTP routes of KoboToolbox sources: thin, the logic is in kobo/service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.beneficiaries.kobo import service as svc
from services.beneficiaries.kobo.schemas import KoboPullPublic, KoboSourceCreate, KoboSourcePublic
from shared.auth import require_roles
from shared.db import SessionDep, after_commit

Manager = require_roles("programme_manager")

kobo = APIRouter(prefix="/api/v1/beneficiaries/kobo-sources", tags=["kobo"])


@kobo.post("", status_code=201, response_model=KoboSourcePublic)
async def create_kobo_source(request: Request, body: KoboSourceCreate, session: SessionDep,
                             principal: Manager) -> KoboSourcePublic:
    """Connect a KoboToolbox form: its submissions are pulled every `pull_interval_minutes` (the first pull
    right away) and registered through the bulk import, under your name and governorates."""
    source = await svc.create_source(
        session=session, settings=request.app.state.settings, principal=principal, name=body.name,
        server_url=str(body.server_url), token=body.token, asset_uid=body.asset_uid, mapping=dict(body.mapping),
        defaults=dict(body.defaults), pull_interval_minutes=body.pull_interval_minutes)
    after_commit(session, request.app.state.kobo_wakeup.set)
    return KoboSourcePublic.model_validate(source)


@kobo.get("/{source_id}", response_model=KoboSourcePublic)
async def get_kobo_source(source_id: str, session: SessionDep, principal: Manager) -> KoboSourcePublic:
    """One Kobo source (its token is never shown)."""
    return KoboSourcePublic.model_validate(await svc.get_source(session=session, principal=principal,
                                                                source_id=source_id))


@kobo.post("/{source_id}/pulls", status_code=202, response_model=KoboSourcePublic)
async def request_kobo_pull(request: Request, source_id: str, session: SessionDep,
                            principal: Manager) -> KoboSourcePublic:
    """Pull the new submissions now rather than at the next scheduled time; the outcome appears in the pulls."""
    source = await svc.request_pull(session=session, principal=principal, source_id=source_id)
    after_commit(session, request.app.state.kobo_wakeup.set)
    return KoboSourcePublic.model_validate(source)


@kobo.get("/{source_id}/pulls", response_model=list[KoboPullPublic])
async def list_kobo_pulls(source_id: str, session: SessionDep, principal: Manager,
                          limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[KoboPullPublic]:
    """Each pull's outcome, newest first: submissions received, new ones imported (with the import job), or
    the error."""
    return [KoboPullPublic.model_validate(p) for p in await svc.list_pulls(
        session=session, principal=principal, source_id=source_id, limit=limit)]


routers = (kobo,)
