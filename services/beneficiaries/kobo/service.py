"""KoboToolbox intake: fetch a form's new submissions from the v2 data API and import them.

A pull asks ``{server}/api/v2/assets/{uid}/data/`` for submissions after the newest ``_submission_time``
imported so far (a ``query`` on ``_submission_time``), follows ``next`` through the pages, maps each
submission's XLSForm paths (``group_hh/first_name``) to registration fields and hands the new ones (by
``_uuid``: a submission seen before is skipped, whatever Kobo sends) to the bulk import as one job: the
same validation, matching, report and events as any import. Each pull's outcome is recorded. Fetching
happens outside any transaction; the bookkeeping and the import job commit together.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import insert, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.beneficiaries.imports import service as imports
from services.beneficiaries.kobo.models import KoboPull, KoboSource, KoboSubmission
from shared.auth import Principal
from shared.db import advisory_xact_lock, utcnow
from shared.errors import NotFound
from shared.pii import seal
from shared.settings import CommonSettings

MAX_PAGES = 1000


class KoboError(Exception):
    """Kobo could not be read (unreachable, refused the token, or answered something else than its API)."""


async def create_source(*, session: AsyncSession, settings: CommonSettings, principal: Principal, name: str,
                        server_url: str, token: str, asset_uid: str, mapping: dict[str, str],
                        defaults: dict[str, Any], pull_interval_minutes: int) -> KoboSource:
    source = KoboSource(name=name, server_url=server_url.rstrip("/"), token=seal(settings, token),
                        asset_uid=asset_uid, mapping=mapping, defaults=defaults, owner=principal.sub,
                        roles=sorted(principal.roles), governorates=sorted(principal.governorates),
                        pull_interval_minutes=pull_interval_minutes)
    session.add(source)
    await session.flush()
    return source


def _visible(source: KoboSource, principal: Principal) -> bool:
    return source.owner == principal.sub or (principal.all_governorates
                                            or set(source.governorates) <= principal.governorates)


async def get_source(*, session: AsyncSession, principal: Principal, source_id: str) -> KoboSource:
    source = await session.get(KoboSource, source_id)
    if source is None or not _visible(source, principal):
        raise NotFound(f"No Kobo source {source_id}")
    return source


async def request_pull(*, session: AsyncSession, principal: Principal, source_id: str) -> KoboSource:
    """Ask the puller to pull this source now (the outcome appears among its pulls)."""
    source = await get_source(session=session, principal=principal, source_id=source_id)
    source.pull_requested_at = utcnow()
    session.add(source)
    await session.flush()
    return source


async def list_pulls(*, session: AsyncSession, principal: Principal, source_id: str, limit: int) -> list[KoboPull]:
    await get_source(session=session, principal=principal, source_id=source_id)
    return list((await session.execute(select(KoboPull).where(KoboPull.source_id == source_id)
                                       .order_by(KoboPull.finished_at.desc()).limit(limit))).scalars())  # type: ignore[attr-defined]


# -- pulling -------------------------------------------------------------------------------------------
def _same_origin(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme, x.netloc) == (y.scheme, y.netloc)


async def fetch_submissions(client: httpx.AsyncClient, source: KoboSource, token: str) -> list[dict[str, Any]]:
    """Every submission after the source's watermark, oldest first, across the API's pages."""
    url: str | None = f"{source.server_url}/api/v2/assets/{source.asset_uid}/data/"
    params: dict[str, str] | None = {"format": "json", "sort": json.dumps({"_submission_time": 1})}
    if source.last_submission_time:
        assert params is not None
        params["query"] = json.dumps({"_submission_time": {"$gt": source.last_submission_time}})
    results: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        if url is None:
            return results
        if not _same_origin(url, source.server_url):  # the token goes nowhere else
            raise KoboError("Kobo's `next` page points to another server")
        try:
            resp = await client.get(url, params=params, headers={"Authorization": f"Token {token}",
                                                                 "Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise KoboError(f"Kobo unreachable: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise KoboError(f"Kobo answered HTTP {resp.status_code}")
        try:
            page = resp.json()
            results += [r for r in page["results"] if isinstance(r, dict)]
            url = page.get("next")
        except (ValueError, KeyError, TypeError) as exc:
            raise KoboError("Kobo's answer is not its data API's") from exc
        params = None  # `next` carries them
    raise KoboError(f"more than {MAX_PAGES} pages")


def to_record(source: KoboSource, submission: dict[str, Any]) -> dict[str, Any]:
    """A submission as a registration body: the source's defaults, then each mapped XLSForm path's value
    (a target ``consent.given`` makes a nested field). Unmapped fields, repeat groups included, are left out."""
    record: dict[str, Any] = json.loads(json.dumps(source.defaults))
    for path, field in source.mapping.items():
        if path not in submission or submission[path] in (None, ""):
            continue
        parent, _, child = field.partition(".")
        if child:
            record.setdefault(parent, {})[child] = submission[path]
        else:
            record[field] = submission[path]
    return record


async def record_pull(*, session: AsyncSession, settings: CommonSettings, source_id: str,
                      submissions: list[dict[str, Any]], started_at: Any) -> KoboPull:
    """Import the submissions not seen before (one import job) and record the pull, in the caller's transaction."""
    await advisory_xact_lock(session, f"kobo-source:{source_id}")  # two replicas pulling: one imports
    source = await session.get(KoboSource, source_id)
    assert source is not None
    await session.refresh(source)
    uuids = [str(s.get("_uuid")) for s in submissions if s.get("_uuid")]
    known = set((await session.execute(select(KoboSubmission.uuid).where(
        KoboSubmission.source_id == source_id, KoboSubmission.uuid.in_(uuids)))).scalars()) if uuids else set()  # type: ignore[attr-defined]
    new: dict[str, dict[str, Any]] = {}
    for s in submissions:
        uid = s.get("_uuid")
        if uid and str(uid) not in known and str(uid) not in new:
            new[str(uid)] = s
    pull = KoboPull(source_id=source_id, status="succeeded", submissions=len(submissions), imported=len(new),
                    already_known=len(submissions) - len(new), started_at=started_at)
    if new:
        principal = Principal(sub=source.owner, roles=frozenset(source.roles),
                              governorates=frozenset(source.governorates))
        records = [to_record(source, s) for s in new.values()]
        job, _ = await imports.create_import(session=session, settings=settings, principal=principal,
                                             body=json.dumps(records, ensure_ascii=False).encode(),
                                             content_type="application/json")
        pull.import_id = job.id
        await session.execute(insert(KoboSubmission), [
            dict(source_id=source_id, uuid=uid, submission_id=s.get("_id"),
                 submission_time=str(s.get("_submission_time") or ""), import_id=job.id, row_number=n,
                 seen_at=utcnow()) for n, (uid, s) in enumerate(new.items(), start=1)])
    times = [str(s["_submission_time"]) for s in submissions if s.get("_submission_time")]
    if times:
        source.last_submission_time = max([*times, source.last_submission_time or ""])
    source.last_pulled_at = utcnow()
    source.pull_requested_at = None
    session.add_all([source, pull])
    await session.flush()
    return pull


async def record_failure(*, session: AsyncSession, source_id: str, error: str, started_at: Any) -> KoboPull:
    source = await session.get(KoboSource, source_id)
    assert source is not None
    source.last_pulled_at = utcnow()
    source.pull_requested_at = None
    pull = KoboPull(source_id=source_id, status="failed", error=error[:500], started_at=started_at)
    session.add_all([source, pull])
    await session.flush()
    return pull


async def due_sources(session: AsyncSession) -> list[KoboSource]:
    """Sources whose pull was asked for, or whose interval has passed since the last pull."""
    now = utcnow()
    sources = (await session.execute(select(KoboSource))).scalars().all()
    return [s for s in sources if s.pull_requested_at is not None or s.last_pulled_at is None
            or (now - s.last_pulled_at).total_seconds() >= s.pull_interval_minutes * 60]

