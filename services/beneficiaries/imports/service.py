"""Bulk import: parse an upload into a job of rows, then register its rows a batch at a time.

A row becomes a registration exactly as ``POST /api/v1/beneficiaries`` would make it: the same body model
(validation, consent) and the same rules, records, audit entries and ``BeneficiaryRegistered`` events, through
``service.register_many`` (the bulk form of ``service.register``: scope, community and household checks,
national-ID uniqueness, duplicate matching with the same blocking keys and scoring). Rows are processed in
order, so a row that repeats an earlier row of the same file, in this batch or an earlier one, finds that row's
registration as its candidate (reported with its row number).

The worker handles a batch of rows per transaction: a few set-based queries (places, national IDs, the
registry's people of the batch's blocks), then one INSERT per table (records, audit, outbox) and one
executemany for the rows' outcomes; with the job's counters they commit together, so a restart resumes at
the first row without an outcome and never leaves a row half-applied. Functions add and flush; the caller
commits.

Concurrency (PostgreSQL): a batch takes the advisory locks of all its blocks (those ``register`` takes, in one
order) before reading the registry, so single registrations and other imports of the same blocks are matched
or wait; two batches of one job never run at once (``_lock_job``). On SQLite, BEGIN IMMEDIATE serialises them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

from pydantic import ValidationError
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from services.beneficiaries import service as beneficiaries
from services.beneficiaries.imports.models import ImportJob, ImportRow  # noqa: F401 (ImportJob re-exported)
from services.beneficiaries.schemas import BeneficiaryCreate
from shared.auth import Principal
from shared.db import advisory_xact_lock, utcnow
from shared.errors import Conflict, NotFound, ProblemError, Unprocessable
from shared.outbox import Outbox
from shared.pii import seal, unseal
from shared.settings import CommonSettings

FORMATS = {"text/csv": "csv", "application/json": "json"}
MAX_ROWS = 100_000


class UnsupportedMediaType(ProblemError):
    status = 415
    slug = "unsupported-media-type"


def _upload_error(msg: str) -> Unprocessable:
    return Unprocessable(msg, errors=[{"loc": ["body"], "msg": msg}])


# -- parsing ---------------------------------------------------------------------------------------
def _nest(flat: dict[str, str]) -> dict[str, Any]:
    """A CSV row as a registration body: empty cells are absent, ``consent.given`` / ``consent_given`` and
    ``disability.seeing`` / ``disability_seeing`` become nested objects."""
    record: dict[str, Any] = {}
    for key, value in flat.items():
        if key is None or value is None or value.strip() == "":
            continue
        key = key.strip()
        for parent in ("consent", "disability"):
            if key.startswith(f"{parent}_") or key.startswith(f"{parent}."):
                record.setdefault(parent, {})[key[len(parent) + 1:]] = value
                break
        else:
            record[key] = value
    return record


def parse_upload(body: bytes, content_type: str | None) -> tuple[str, list[dict[str, Any]]]:
    """(format, records) of an upload: a CSV with a header row, or a JSON array of registration objects."""
    media = (content_type or "").split(";")[0].strip().lower()
    fmt = FORMATS.get(media)
    if fmt is None:
        raise UnsupportedMediaType("Upload a CSV file (text/csv) or a JSON array (application/json)")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _upload_error("the upload is not UTF-8 text") from None
    if fmt == "json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise _upload_error("the upload is not valid JSON (or is nested too deeply)") from None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise _upload_error("a JSON upload is an array of objects")
        records = data
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames or not {"first_name", "father_name"} <= {f.strip() for f in reader.fieldnames}:
            raise _upload_error("a CSV upload starts with a header row naming the fields (first_name, ...)")
        try:
            records = [_nest(row) for row in reader]
        except csv.Error as exc:
            raise _upload_error(f"the CSV cannot be read: {exc}") from None
    if not records:
        raise _upload_error("the upload has no rows")
    if len(records) > MAX_ROWS:
        raise _upload_error(f"at most {MAX_ROWS} rows per upload")
    return fmt, records


# -- jobs ----------------------------------------------------------------------------------------------
async def create_import(*, session: AsyncSession, settings: CommonSettings, principal: Principal, body: bytes,
                        content_type: str | None, request_id: str | None = None,
                        traceparent: str | None = None) -> tuple[ImportJob, bool]:
    """The job for this upload: a new one (True), or the one the same caller made from the same bytes (False)."""
    fmt, records = parse_upload(body, content_type)
    content_hash = hashlib.sha256(body).hexdigest()
    same = select(ImportJob).where(ImportJob.owner == principal.sub, ImportJob.content_hash == content_hash)
    if (existing := (await session.execute(same)).scalars().first()) is not None:
        return existing, False
    job = ImportJob(owner=principal.sub, roles=sorted(principal.roles), governorates=sorted(principal.governorates),
                    content_hash=content_hash, format=fmt, status="queued", total_rows=len(records),
                    request_id=request_id, traceparent=traceparent)
    try:
        async with session.begin_nested():  # the unique (owner, content) decides a race between two uploads
            session.add(job)
            await session.flush()
    except IntegrityError:
        return (await session.execute(same)).scalars().one(), False
    now = utcnow()
    # Records are sealed: a national ID or phone is never at rest in clear, even while it waits.
    await session.execute(insert(ImportRow), [
        dict(job_id=job.id, row_number=n, status="pending", record=seal(settings, json.dumps(record)),
             confirmed=False, updated_at=now)
        for n, record in enumerate(records, start=1)])
    return job, True


def _visible(job: ImportJob, principal: Principal) -> bool:
    """The uploader, or a programme manager whose governorates cover the job's."""
    if job.owner == principal.sub:
        return True
    return "programme_manager" in principal.roles and (
        principal.all_governorates or set(job.governorates) <= principal.governorates)


async def get_import(*, session: AsyncSession, principal: Principal, import_id: str) -> ImportJob:
    job = await session.get(ImportJob, import_id)
    if job is None or not _visible(job, principal):
        raise NotFound(f"No import {import_id}")
    return job


async def list_rows(*, session: AsyncSession, principal: Principal, import_id: str, status: str | None,
                    after: int, limit: int) -> tuple[list[ImportRow], int | None]:
    """A page of the job's per-row report in row order, and the last row number when there is more."""
    await get_import(session=session, principal=principal, import_id=import_id)
    stmt = select(ImportRow).where(ImportRow.job_id == import_id, ImportRow.row_number > after)
    if status:
        stmt = stmt.where(ImportRow.status == status)
    rows = list((await session.execute(stmt.order_by(ImportRow.row_number).limit(limit + 1))).scalars())
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].row_number
    return rows, None


# -- rows --------------------------------------------------------------------------------------------
def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    # Field and message only: the input value (a name, a phone) never goes into the report.
    return [{"loc": [str(p) if not isinstance(p, int) else p for p in e["loc"]], "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)]


def _outcome(sealed: str | None, result: Any, *, confirm: bool) -> dict[str, Any]:
    """A row's new values from what registering it gave: a validation error, the registration, or the error
    ``register`` raises (422: invalid; 409: a duplicate, the record kept sealed so a reviewer can confirm it)."""
    outcome: dict[str, Any] = dict(status="invalid", record=None, beneficiary_id=None, candidates=None,
                                   errors=None, confirmed=False, updated_at=utcnow())
    if isinstance(result, ValidationError):
        return {**outcome, "errors": _errors(result)}
    if isinstance(result, Unprocessable):
        errors = [{"loc": [str(p) for p in e.get("loc", [])], "msg": str(e.get("msg", ""))}
                  for e in result.extra.get("errors", [])] or [{"loc": [], "msg": result.detail}]
        return {**outcome, "errors": errors}
    if isinstance(result, Conflict):
        candidates = list(result.extra.get("candidates") or [])
        outcome.update(status="duplicate", record=sealed, candidates=candidates)
        if not candidates:  # the same national ID: the holder is not named (see service._national_id_conflict)
            outcome["errors"] = [{"loc": ["national_id"], "msg": "a person with this national ID is already "
                                                                 "registered"}]
        return outcome
    return {**outcome, "status": "created", "beneficiary_id": result.id, "confirmed": confirm}


async def _register_records(session: AsyncSession, outbox: Outbox, settings: CommonSettings, principal: Principal,
                            job_id: str, rows: list[tuple[int, str | None]], *,
                            confirm: bool) -> dict[int, dict[str, Any]]:
    """Register rows (row number, sealed record) in order as single registrations would be, each seeing the ones
    before it (``service.register_many``); returns each row's outcome (its new values).

    A candidate created by a row of this file (this batch or an earlier one) is reported with its row number.
    """
    parsed: dict[int, Any] = {}
    for row_number, sealed in rows:
        record = json.loads(unseal(settings, sealed or "{}"))
        record.pop("confirm_not_duplicate", None)  # only a reviewer's confirmation (below) overrides matching
        try:
            parsed[row_number] = BeneficiaryCreate.model_validate({**record, "confirm_not_duplicate": confirm})
        except ValidationError as exc:
            parsed[row_number] = exc
    valid = [n for n, data in parsed.items() if isinstance(data, BeneficiaryCreate)]
    results = dict(parsed) | dict(zip(valid, await beneficiaries.register_many(
        session=session, outbox=outbox, settings=settings, principal=principal, items=[parsed[n] for n in valid]),
        strict=True))
    outcomes = {n: _outcome(sealed, results[n], confirm=confirm) for n, sealed in rows}
    row_of = {o["beneficiary_id"]: n for n, o in outcomes.items() if o["beneficiary_id"]}
    unknown = {c["id"] for o in outcomes.values() for c in o["candidates"] or ()} - row_of.keys()
    if unknown:  # registered by rows of earlier batches of this file?
        row_of |= dict((await session.execute(select(ImportRow.beneficiary_id, ImportRow.row_number).where(
            ImportRow.job_id == job_id, ImportRow.beneficiary_id.in_(unknown)))).all())  # type: ignore[union-attr]
    for o in outcomes.values():
        for c in o["candidates"] or ():
            c["row_number"] = row_of.get(c["id"])
    return outcomes


_rows = ImportRow.__table__  # type: ignore[attr-defined]
_write_outcome = _rows.update().where(_rows.c.job_id == bindparam("b_job"), _rows.c.row_number == bindparam("b_row")
                                      ).values({c: bindparam(c) for c in ("status", "record", "beneficiary_id",
                                                                           "candidates", "errors", "confirmed",
                                                                           "updated_at")})


async def _write_outcomes(session: AsyncSession, job_id: str, outcomes: dict[int, dict[str, Any]]) -> None:
    if outcomes:
        await session.execute(_write_outcome, [{**o, "b_job": job_id, "b_row": n} for n, o in outcomes.items()])


def _principal(job: ImportJob) -> Principal:
    return Principal(sub=job.owner, roles=frozenset(job.roles), governorates=frozenset(job.governorates))


async def _lock_job(session: AsyncSession, job_id: str) -> ImportJob | None:
    """Serialise work on one job (the worker's batches, a reviewer's confirmations) and read it fresh."""
    await advisory_xact_lock(session, f"beneficiary-import:{job_id}")
    job = await session.get(ImportJob, job_id)
    if job is not None:
        await session.refresh(job)
    return job


async def process_batch(*, session: AsyncSession, outbox: Outbox, settings: CommonSettings, job_id: str,
                        batch_size: int = 500) -> bool:
    """Give the next ``batch_size`` pending rows of a job their outcome; False once the job is complete."""
    job = await _lock_job(session, job_id)
    if job is None or job.status == "completed":
        return False
    pending = (await session.execute(select(ImportRow.row_number, ImportRow.record).where(
        ImportRow.job_id == job_id, ImportRow.status == "pending").order_by(ImportRow.row_number)
        .limit(batch_size))).all()
    if job.status == "queued":
        job.status, job.started_at = "running", utcnow()
    outcomes = await _register_records(session, outbox, settings, _principal(job), job_id,
                                       [(n, sealed) for n, sealed in pending], confirm=False)
    await _write_outcomes(session, job_id, outcomes)
    statuses = [o["status"] for o in outcomes.values()]
    job.processed_rows += len(statuses)
    job.created_rows += statuses.count("created")
    job.duplicate_rows += statuses.count("duplicate")
    job.invalid_rows += statuses.count("invalid")
    if len(pending) < batch_size:
        job.status, job.finished_at = "completed", utcnow()
    await session.flush()
    return job.status != "completed"


async def confirm_rows(*, session: AsyncSession, outbox: Outbox, settings: CommonSettings, principal: Principal,
                       import_id: str, row_numbers: list[int]) -> list[ImportRow]:
    """Register reviewed probable duplicates as different people (all or none; 409 for a row not in review)."""
    await get_import(session=session, principal=principal, import_id=import_id)
    job = await _lock_job(session, import_id)
    assert job is not None
    wanted = sorted(set(row_numbers))
    rows = {r.row_number: r for r in (await session.execute(select(ImportRow).where(
        ImportRow.job_id == import_id, ImportRow.row_number.in_(wanted)))).scalars()}  # type: ignore[attr-defined]
    if missing := [n for n in wanted if n not in rows]:
        raise Unprocessable(f"no such rows: {missing}", errors=[{"loc": ["body", "rows"], "msg": "unknown row"}])
    if waiting := [n for n in wanted if rows[n].status != "duplicate"]:
        raise Conflict(f"rows {waiting} are not probable duplicates awaiting review", slug="not-in-review")
    # The reviewer confirms under their own scope and name (the audit entry says who decided).
    outcomes = await _register_records(session, outbox, settings, principal, import_id,
                                       [(n, rows[n].record) for n in wanted], confirm=True)
    for n, outcome in outcomes.items():
        for key, value in outcome.items():
            setattr(rows[n], key, value)
        if outcome["status"] != "duplicate":
            job.duplicate_rows -= 1
            job.created_rows += outcome["status"] == "created"
            job.invalid_rows += outcome["status"] == "invalid"
    await session.flush()
    return [rows[n] for n in wanted]


async def next_job(session: AsyncSession) -> str | None:
    """The oldest job with rows still to process."""
    stmt = (select(ImportJob.id).where(ImportJob.status.in_(("queued", "running")))  # type: ignore[attr-defined]
            .order_by(ImportJob.created_at).limit(1))
    return (await session.execute(stmt)).scalars().first()
