"""HTTP routes of bulk imports: thin, the logic is in imports/service.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.beneficiaries.imports import service as svc
from services.beneficiaries.imports.schemas import (
    ImportConfirmation,
    ImportPublic,
    ImportRowPage,
    ImportRowPublic,
    RowStatus,
    row_public,
)
from shared.auth import require_roles
from shared.db import SessionDep, after_commit
from shared.errors import Unprocessable
from shared.observability import request_id_var, trace_var
from shared.outbox import OutboxDep
from shared.urls import public_url

Importer = require_roles("programme_manager", "case_worker", "partner_system")

imports = APIRouter(prefix="/api/v1/beneficiaries/imports", tags=["imports"])

_UPLOAD = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}, "example": "first_name,father_name,sex,date_of_birth,"
                 "displacement_status,community_id,consent.given,consent.obtained_on\n"},
    "application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/BeneficiaryCreate"}}},
}}}


@imports.post("", status_code=202, response_model=ImportPublic, openapi_extra=_UPLOAD,
              responses={200: {"model": ImportPublic, "description": "The same file again: its existing job"},
                         413: {"description": "Upload too large (problem+json)"},
                         415: {"description": "Neither text/csv nor application/json (problem+json)"}})
async def create_beneficiary_import(request: Request, session: SessionDep, principal: Importer) -> JSONResponse:
    """Upload beneficiaries to register in the background: a CSV file (`text/csv`, a header row of field
    names; `consent.given`, `consent.obtained_on`, `disability.seeing`... for nested fields) or a JSON array of
    registration bodies (`application/json`).

    Answers 202 with the job; follow its progress at `Location`, then read the per-row report. Each row is
    registered exactly as `POST /api/v1/beneficiaries` would (validation, consent, duplicate matching,
    event), within your governorates. Uploading the same bytes again answers 200 with the same job and
    imports nothing twice.
    """
    job, created = await svc.create_import(
        session=session, settings=request.app.state.settings, principal=principal, body=await request.body(),
        content_type=request.headers.get("content-type"), request_id=request_id_var.get(),
        traceparent=trace_var.get())
    if created:
        after_commit(session, request.app.state.import_wakeup.set)
    return JSONResponse(ImportPublic.model_validate(job).model_dump(mode="json"), status_code=202 if created else 200,
                        headers={"Location": public_url(request, f"/api/v1/beneficiaries/imports/{job.id}")})


@imports.get("/{import_id}", response_model=ImportPublic)
async def get_beneficiary_import(import_id: str, session: SessionDep, principal: Importer) -> ImportPublic:
    """An import job and its progress (`processed_rows` of `total_rows`) and outcome counts (404 unless you
    uploaded it or are a programme manager covering its governorates)."""
    return ImportPublic.model_validate(await svc.get_import(session=session, principal=principal,
                                                            import_id=import_id))


@imports.get("/{import_id}/rows", response_model=ImportRowPage)
async def list_beneficiary_import_rows(
    import_id: str, session: SessionDep, principal: Importer,
    status: RowStatus | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="The `next_cursor` of the previous page.")] = None,
) -> ImportRowPage:
    """The per-row report in row order: `created` (with the registration), `duplicate` (with the candidates,
    their scores and reasons; a candidate from an earlier row of the same file names it), `invalid` (the
    fields and why), or still `pending`."""
    if cursor is not None and not cursor.isdigit():
        raise Unprocessable("The cursor is not valid", errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}])
    rows, last = await svc.list_rows(session=session, principal=principal, import_id=import_id, status=status,
                                     after=int(cursor or 0), limit=limit)
    return ImportRowPage(items=[row_public(r) for r in rows], next_cursor=None if last is None else str(last))


@imports.post("/{import_id}/confirmations", response_model=list[ImportRowPublic],
              responses={409: {"description": "A row is not a probable duplicate awaiting review"}})
async def confirm_beneficiary_import_rows(request: Request, import_id: str, body: ImportConfirmation,
                                         session: SessionDep, outbox: OutboxDep,
                                         principal: Importer) -> list[ImportRowPublic]:
    """Register reviewed probable duplicates: you confirm these rows are different people from their
    candidates. All the rows or none (409 if one is not a duplicate awaiting review). A row with a national
    ID already on file stays a duplicate: it cannot be overridden."""
    rows = await svc.confirm_rows(session=session, outbox=outbox, settings=request.app.state.settings,
                                  principal=principal, import_id=import_id, row_numbers=body.rows)
    return [row_public(r) for r in rows]


routers = (imports,)
