"""Domain logic of the beneficiaries service. Functions add and flush; the caller's session commits."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Row, Select, bindparam, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased
from sqlmodel.ext.asyncio.session import AsyncSession

from services.beneficiaries import gazetteer
from services.beneficiaries.matching import (
    BIRTH_YEAR_BAND,
    DUPLICATE_THRESHOLD,
    Match,
    PersonName,
    blocking_key,
    compare,
    normalize,
    search_key,
)
from services.beneficiaries.models import Beneficiary, Community, DuplicateReview, Household, new_id, review_pair
from services.beneficiaries.schemas import (
    BeneficiaryCreate,
    BeneficiaryPublic,
    BeneficiaryUpdate,
    Candidate,
    CommunityCreate,
    ConsentWithdrawal,
    Disability,
    DuplicateDecision,
    DuplicateReviewPublic,
    DuplicateReviewSummary,
    ErasureRequest,
    HouseholdCreate,
    RescanResult,
)
from shared.audit import AuditEntry, audit
from shared.auth import Principal
from shared.concurrency import lock_rows
from shared.db import ReadRow, Reads, advisory_xact_lock, after_commit, utcnow
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events import CloudEvent, EventData
from shared.events.beneficiaries import (
    BeneficiaryConsentWithdrawn,
    BeneficiaryErased,
    BeneficiaryMerged,
    BeneficiaryRegistered,
    BeneficiaryUpdated,
    CommunityCreated,
)
from shared.observability import request_id_var, trace_var
from shared.outbox import Outbox, OutboxMessage
from shared.pii import check_chain, current_chain, keyed_hash, needs_rewrap, rewrap
from shared.scope import Conditions, get_in_scope, list_in_scope, read_in_scope, select_filtered
from shared.settings import CommonSettings


def _field_error(field: str, msg: str) -> Unprocessable:
    return Unprocessable(msg, errors=[{"loc": ["body", field], "msg": msg}])


# -- communities and households ---------------------------------------------------------------------
async def create_community(*, session: AsyncSession, outbox: Outbox, principal: Principal,
                           data: CommunityCreate) -> Community:
    """Create a community in a known district the caller may work in."""
    district = gazetteer.district(data.district_pcode)
    if district is None:
        raise _field_error("district_pcode", f"unknown district P-code {data.district_pcode!r}")
    if not principal.sees(district.parent_pcode):
        raise _field_error("district_pcode", "the district is outside your governorates")
    community = Community(**data.model_dump(), governorate_pcode=district.parent_pcode)
    session.add(community)
    audit(session, principal=principal, entity="community", entity_id=community.id, action="created",
          fields=data.model_fields_set)
    outbox.emit(session, CommunityCreated(community_id=community.id, district_pcode=community.district_pcode,
                                          governorate_pcode=community.governorate_pcode), subject_id=community.id)
    await session.flush()
    return community


async def get_community(*, session: AsyncSession, principal: Principal, community_id: str) -> Community:
    """A community in the caller's scope, else NotFound."""
    return await get_in_scope(session, Community, community_id, principal, label="community")


def list_communities_query(*, principal: Principal, governorate: str | None,
                           district: str | None) -> Select[Any]:
    return select_filtered(Community, principal, governorate_pcode=governorate, district_pcode=district)


async def _community_for_write(session: AsyncSession, principal: Principal, community_id: str) -> Community:
    try:
        return await get_community(session=session, principal=principal, community_id=community_id)
    except NotFound:
        raise _field_error("community_id", f"unknown community {community_id!r}") from None


async def create_household(*, session: AsyncSession, principal: Principal, data: HouseholdCreate) -> Household:
    """Create a household in a community the caller may work in."""
    community = await _community_for_write(session, principal, data.community_id)
    household = Household(community_id=community.id, size=data.size, district_pcode=community.district_pcode,
                          governorate_pcode=community.governorate_pcode)
    session.add(household)
    audit(session, principal=principal, entity="household", entity_id=household.id, action="created",
          fields=data.model_fields_set)
    await session.flush()
    return household


async def get_household(*, session: AsyncSession, principal: Principal, household_id: str) -> Household:
    return await get_in_scope(session, Household, household_id, principal, label="household")


async def _household_for_write(session: AsyncSession, principal: Principal, household_id: str,
                               community_id: str) -> Household:
    try:
        household = await get_household(session=session, principal=principal, household_id=household_id)
    except NotFound:
        raise _field_error("household_id", f"unknown household {household_id!r}") from None
    if household.community_id != community_id:
        raise _field_error("household_id", "the household belongs to another community")
    return household


# -- beneficiaries --------------------------------------------------------------------------------
class _Attributes:
    """``obj[name]`` as ``obj.name``: a model instance read like a row's mapping."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __getitem__(self, name: str) -> Any:
        return getattr(self.obj, name)


def public_fields(b: Beneficiary | Any) -> dict[str, Any]:
    """The public view of a record (a model instance, or a read-only row of its table) as plain values, for a
    route whose ``response_model`` validates and renders it once, in pydantic's core (a page of 50 models built
    in Python first cost more than the query). A row is read through its mapping: a ``Row``'s attribute access
    costs ten times a mapping lookup, and a page reads a thousand values."""
    v: Any = b._mapping if isinstance(b, Row | ReadRow) else _Attributes(b)
    return {
        "id": v["id"], "first_name": v["first_name"], "father_name": v["father_name"],
        "grandfather_name": v["grandfather_name"], "family_name": v["family_name"], "sex": v["sex"],
        "date_of_birth": v["date_of_birth"], "displacement_status": v["displacement_status"],
        "community_id": v["community_id"], "household_id": v["household_id"], "district_pcode": v["district_pcode"],
        "governorate_pcode": v["governorate_pcode"], "phone": v["phone"],
        "has_national_id": v["national_id_hash"] is not None, "disability": _disability_public(v["disability"]),
        "consent": {"given": v["consent_withdrawn_on"] is None, "obtained_on": v["consent_obtained_on"],
                    "withdrawn_on": v["consent_withdrawn_on"], "withdrawal_reason": v["consent_withdrawal_reason"]},
        "merged_into_id": v["merged_into_id"], "erased_on": v["erased_on"], "version": v["version"],
        "created_at": v["created_at"], "updated_at": v["updated_at"],
    }


_DISABILITY_DOMAINS = tuple(Disability.model_fields)


def _disability_public(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """The stored answers in the schema's order (a response may be rendered straight from the row)."""
    return None if stored is None else {domain: stored[domain] for domain in _DISABILITY_DOMAINS}


def to_public(b: Beneficiary | Any) -> BeneficiaryPublic:
    """The public view of a record, as a model."""
    return BeneficiaryPublic.model_validate(public_fields(b))


def _person_name(b: Beneficiary | BeneficiaryCreate) -> PersonName:
    return PersonName(first_name=b.first_name, father_name=b.father_name,
                      grandfather_name=b.grandfather_name, family_name=b.family_name)


def _has_disability(disability: dict[str, Any] | None) -> bool:
    return disability is not None and Disability(**disability).has_disability


def _snapshot(b: Beneficiary | Any) -> dict[str, Any]:
    """The pseudonymous facts every beneficiary event carries."""
    return dict(beneficiary_id=b.id, revision=b.version, sex=b.sex, birth_year=b.birth_year,
                displacement_status=b.displacement_status, community_id=b.community_id,
                household_id=b.household_id, district_pcode=b.district_pcode,
                governorate_pcode=b.governorate_pcode, has_disability=_has_disability(b.disability))


REVIEWS_FOUND = Counter("crp_duplicate_reviews_found_total", "Probable duplicate pairs put in the review queue",
                        ["source"])
REVIEWS_DECIDED = Counter("crp_duplicate_reviews_decided_total", "Duplicate reviews decided", ["decision"])


async def _lock_block(session: AsyncSession, key: str) -> None:
    """Serialise registrations of one block (nationwide), so two clerks can't both miss each other."""
    await advisory_xact_lock(session, f"beneficiary-block:{key}")


@dataclass(frozen=True)
class Found:
    """A probable duplicate: who, where (for the caller's scope), and why."""

    id: str
    governorate_pcode: str
    match: Match

    def candidate(self) -> Candidate:
        return Candidate(id=self.id, score=round(self.match.score, 3), reasons=self.match.reasons)


_BLOCK_COLUMNS = (Beneficiary.id, Beneficiary.first_name, Beneficiary.father_name, Beneficiary.grandfather_name,
                  Beneficiary.family_name, Beneficiary.governorate_pcode)
_block_query = (select(*_BLOCK_COLUMNS).where(
    Beneficiary.blocking_key == bindparam("key"),
    Beneficiary.birth_year.between(bindparam("year_from"), bindparam("year_to")),  # type: ignore[attr-defined]
    Beneficiary.merged_into_id.is_(None),  # type: ignore[union-attr]
    Beneficiary.id != bindparam("exclude_id")))


def _row_name(row: Any) -> PersonName:
    return PersonName(first_name=row.first_name, father_name=row.father_name,
                      grandfather_name=row.grandfather_name, family_name=row.family_name)


async def probable_duplicates(*, session: AsyncSession, name: PersonName, birth_year: int,
                              exclude_id: str | None = None) -> list[Found]:
    """Everyone in the country who may be this person, best first, whatever the caller's scope: the people of
    the name's blocking key and birth-year band (an index lookup), scored on the whole name chain."""
    rows = await session.execute(_block_query, {
        "key": blocking_key(name), "year_from": birth_year - BIRTH_YEAR_BAND, "year_to": birth_year + BIRTH_YEAR_BAND,
        "exclude_id": exclude_id or ""})
    found = []
    for row in rows:
        match = compare(name, _row_name(row))
        if match.score >= DUPLICATE_THRESHOLD:
            found.append(Found(id=row.id, governorate_pcode=row.governorate_pcode, match=match))
    return sorted(found, key=lambda f: f.match.score, reverse=True)


async def find_candidates(*, session: AsyncSession, name: PersonName, birth_year: int,
                          district_pcode: str | None = None, exclude_id: str | None = None) -> list[Candidate]:
    """Probable duplicates nationwide (``district_pcode`` is accepted and ignored: place never blocks, people
    move). Not scoped: a caller shows a scoped user only those it may see (``duplicate_conflict``)."""
    return [f.candidate() for f in await probable_duplicates(session=session, name=name, birth_year=birth_year,
                                                             exclude_id=exclude_id)]


def duplicate_conflict(principal: Principal, found: Sequence[Found]) -> Conflict:
    """The 409 for probable duplicates: the candidates the caller may see, and only a count of the others (no id,
    score or name of a record outside their governorates)."""
    visible = [f.candidate().model_dump() for f in found if principal.sees(f.governorate_pcode)]
    hidden = len(found) - len(visible)
    detail = ("This person may already be registered. Check the candidates, or send the request again with "
              '"confirm_not_duplicate": true.')
    if hidden:
        detail += (f" {hidden} probable duplicate(s) registered outside your governorates are not shown; if you "
                   "confirm, a programme manager reviews the pair.")
    return Conflict(detail, slug="probable-duplicate", candidates=visible, candidates_outside_scope=hidden)


def _review_row(beneficiary_id: str, found: Found, source: str) -> dict[str, Any]:
    return dict(id=new_id(), pair=review_pair(beneficiary_id, found.id), beneficiary_id=beneficiary_id,
                candidate_id=found.id, score=round(found.match.score, 4), source=source, status="open", version=1,
                created_at=utcnow())


async def _queue_reviews(session: AsyncSession, rows: Sequence[dict[str, Any]], source: str) -> int:
    """Add pairs to the review queue; a pair already listed (open or decided) is left as it is. Returns how many
    were added."""
    if not rows:
        return 0
    table: Any = DuplicateReview.__table__  # type: ignore[attr-defined]
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    added = 0
    for row in rows:  # one statement each: its rowcount says whether the pair was new
        result = await session.execute(insert(table).values(**row).on_conflict_do_nothing(index_elements=["pair"]))
        added += max(result.rowcount, 0)
    if added:
        after_commit(session, lambda: REVIEWS_FOUND.labels(source).inc(added))
    return added


async def _national_id_owner(session: AsyncSession, settings: CommonSettings, national_id: str) -> Beneficiary | None:
    """Who holds ``national_id``: its hash along every key chain in use (shared.pii), looked up at once."""
    chains = set((await session.execute(select(Beneficiary.national_id_key).distinct().where(
        Beneficiary.national_id_key.is_not(None)))).scalars())  # type: ignore[union-attr]
    hashes = {keyed_hash(settings, national_id, chain) for chain in chains | {current_chain(settings)}}
    stmt = select(Beneficiary).where(Beneficiary.national_id_hash.in_(hashes))  # type: ignore[union-attr]
    return (await session.execute(stmt)).scalars().first()


def _national_id_conflict() -> Conflict:
    # The same answer whoever holds the ID and wherever they are registered: naming the holder only when
    # the caller may see them would tell a scoped caller, by its absence, that the person is registered
    # in a governorate outside their scope. Only "this ID is on file" is said, which uniqueness requires.
    return Conflict("A person with this national ID is already registered. Search for them by name; the "
                    "record may be outside your governorates.", slug="duplicate-national-id", candidates=[])


_BENEFICIARY_COLUMNS = tuple(c.key for c in Beneficiary.__table__.c)  # type: ignore[attr-defined]


def _new_beneficiary(settings: CommonSettings, data: BeneficiaryCreate, community: Community | Any,
                     name: PersonName, key: str, now: datetime) -> dict[str, Any]:
    """Every column of the record a checked registration writes (a single one or a bulk import's row alike)."""
    values = dict.fromkeys(_BENEFICIARY_COLUMNS) | data.model_dump(include={
        "first_name", "father_name", "grandfather_name", "family_name", "sex", "date_of_birth",
        "displacement_status", "household_id", "phone"})
    values.update(
        id=new_id(), version=1, search_key=search_key(name), blocking_key=key, birth_year=data.date_of_birth.year,
        community_id=community.id, district_pcode=community.district_pcode,
        governorate_pcode=community.governorate_pcode,
        national_id_hash=keyed_hash(settings, data.national_id) if data.national_id else None,
        national_id_key=current_chain(settings) if data.national_id else None,
        disability=data.disability.model_dump() if data.disability else None,
        consent_obtained_on=data.consent.obtained_on, created_at=now, updated_at=now,
    )
    return values


def _registered_fields(data: BeneficiaryCreate) -> set[str]:
    """What the audit entry of a registration lists (field names only)."""
    return data.model_fields_set - {"confirm_not_duplicate"}


def _registered_event(beneficiary: Beneficiary | Any) -> BeneficiaryRegistered:
    return BeneficiaryRegistered(**_snapshot(beneficiary), registered_at=beneficiary.created_at)


async def register(*, session: AsyncSession, outbox: Outbox, settings: CommonSettings, principal: Principal,
                   data: BeneficiaryCreate) -> Beneficiary:
    """Register a person, refusing probable duplicates (anywhere in the country) unless the caller confirms they
    are not one; a confirmed registration puts each pair in the review queue."""
    community = await _community_for_write(session, principal, data.community_id)
    if data.household_id:
        await _household_for_write(session, principal, data.household_id, community.id)
    birth_year = data.date_of_birth.year
    name = _person_name(data)
    key = blocking_key(name)
    await _lock_block(session, key)

    if data.national_id and await _national_id_owner(session, settings, data.national_id) is not None:
        raise _national_id_conflict()
    found = await probable_duplicates(session=session, name=name, birth_year=birth_year)
    if found and not data.confirm_not_duplicate:
        raise duplicate_conflict(principal, found)

    beneficiary = Beneficiary(**_new_beneficiary(settings, data, community, name, key, utcnow()))
    session.add(beneficiary)
    audit(session, principal=principal, entity="beneficiary", entity_id=beneficiary.id, action="registered",
          fields=_registered_fields(data))
    outbox.emit(session, _registered_event(beneficiary), subject_id=beneficiary.id)
    await session.flush()
    await _queue_reviews(session, [_review_row(beneficiary.id, f, "registration") for f in found], "registration")
    return beneficiary


# -- many registrations at once (bulk import) ---------------------------------------------------------
async def _lock_blocks(session: AsyncSession, keys: Iterable[str]) -> None:
    """``_lock_block`` for many keys in one round trip, taken in one global order (the lock ids'), so two
    imports locking overlapping blocks queue instead of deadlocking. No-op on SQLite (BEGIN IMMEDIATE)."""
    keys = sorted(set(keys))
    if keys and session.bind.dialect.name == "postgresql":
        await session.execute(text(
            "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT hashtext('beneficiary-block:' || k) AS h "
            "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS ordered"), {"keys": keys})


async def _places(session: AsyncSession, principals: Sequence[Principal],
                  items: Sequence[BeneficiaryCreate]) -> list[Community | Any | Unprocessable]:
    """``_community_for_write`` and ``_household_for_write`` for many registrations (each by its own caller): two
    queries in all. Each item's community (a read-only row), or the 422 the single path would raise for it."""
    tables: Any = Community.__table__, Household.__table__  # type: ignore[attr-defined]
    communities = {row.id: row for row in (await session.execute(select(*tables[0].c).where(
        tables[0].c.id.in_({d.community_id for d in items})))).all()}
    wanted = {d.household_id for d in items if d.household_id}
    households = {row.id: row for row in (await session.execute(select(*tables[1].c).where(
        tables[1].c.id.in_(wanted)))).all()} if wanted else {}
    places: list[Community | Any | Unprocessable] = []
    for data, principal in zip(items, principals, strict=True):
        community = communities.get(data.community_id)
        household = households.get(data.household_id) if data.household_id else None
        if community is not None and not principal.sees(community.governorate_pcode):
            community = None  # outside the caller's scope looks like absent
        if household is not None and not principal.sees(household.governorate_pcode):
            household = None
        if community is None:
            places.append(_field_error("community_id", f"unknown community {data.community_id!r}"))
        elif data.household_id and household is None:
            places.append(_field_error("household_id", f"unknown household {data.household_id!r}"))
        elif household is not None and household.community_id != community.id:
            places.append(_field_error("household_id", "the household belongs to another community"))
        else:
            places.append(community)
    return places


_BLOCK_SELECT = ", ".join(f"b.{c.key}" for c in _BLOCK_COLUMNS) + ", b.blocking_key, b.birth_year"
_blocks_lateral = text(  # PostgreSQL: OFFSET 0 keeps a lookup per pair, never flattened into a join
    f"SELECT {_BLOCK_SELECT} FROM unnest(CAST(:keys AS text[]), CAST(:years AS integer[])) AS blocks(key, year) "
    "CROSS JOIN LATERAL (SELECT * FROM beneficiaries WHERE blocking_key = blocks.key AND birth_year = blocks.year "
    "AND merged_into_id IS NULL OFFSET 0) AS b")
_blocks_json = text(  # SQLite: CROSS JOIN keeps the pairs as the outer loop, each an index lookup
    f"SELECT {_BLOCK_SELECT} FROM json_each(:pairs) AS blocks CROSS JOIN beneficiaries AS b "
    "ON b.blocking_key = json_extract(blocks.value, '$[0]') AND b.birth_year = json_extract(blocks.value, '$[1]') "
    "WHERE b.merged_into_id IS NULL")


async def _blocks(session: AsyncSession, wanted: set[tuple[str, int]]) -> dict[tuple[str, int], list[Any]]:
    """``_block_query`` for many (blocking key, birth year) pairs: the registry's people of those blocks, by pair.

    One statement, the same text whatever the number of pairs (so compiled once: a VALUES list of the pairs was
    compiled again for every batch, a tenth of a registration's CPU), one lookup of the (blocking_key, birth_year)
    index per pair: on PostgreSQL the pairs are two arrays joined LATERAL (a hash join scanned the whole register
    whenever the planner's statistics were missing or stale, 26 ms for 40 pairs among 50,000 people); on SQLite a
    JSON array read by ``json_each``."""
    people: dict[tuple[str, int], list[Any]] = defaultdict(list)
    if not wanted:
        return people
    pairs = sorted(wanted)
    if session.bind.dialect.name == "postgresql":
        stmt, params = _blocks_lateral, {"keys": [k for k, _ in pairs], "years": [y for _, y in pairs]}
    else:
        stmt, params = _blocks_json, {"pairs": json.dumps(pairs)}
    for row in await session.execute(stmt, params):
        people[(row.blocking_key, row.birth_year)].append(row)
    return people


async def _national_ids_on_file(session: AsyncSession, settings: CommonSettings,
                                national_ids: Sequence[str]) -> set[str]:
    """``_national_id_owner`` for many IDs at once: those of ``national_ids`` someone already holds."""
    if not national_ids:
        return set()
    chains = set((await session.execute(select(Beneficiary.national_id_key).distinct().where(
        Beneficiary.national_id_key.is_not(None)))).scalars())  # type: ignore[union-attr]
    chains.add(current_chain(settings))
    hashes = {keyed_hash(settings, nid, chain): nid for nid in national_ids for chain in chains}
    held = set((await session.execute(select(Beneficiary.national_id_hash).where(
        Beneficiary.national_id_hash.in_(hashes)))).scalars())  # type: ignore[union-attr]
    return {hashes[h] for h in held}


def _outbox_row(outbox: Outbox, data: EventData, *, subject_id: str, now: datetime,
                traceparent: str | None) -> dict[str, Any]:
    """The outbox row ``Outbox.emit`` adds for ``data`` (same envelope, subject and trace), for a bulk INSERT."""
    event = CloudEvent.wrap(data, source=outbox.settings.source, subject=subject_id, traceparent=traceparent)
    return dict(event_id=event.id, subject=data.subject(outbox.settings.subject_prefix),
                payload=event.model_dump_json().encode(), created_at=now, published_at=None)


@dataclass(frozen=True)
class Origin:
    """Who asks for a registration, and in which request: its scope, its 409's candidates, and the actor, request id
    and trace of its audit entry and event (in a group commit, each registration of a batch has its own)."""

    principal: Principal
    request_id: str | None = None
    traceparent: str | None = None

    @classmethod
    def current(cls, principal: Principal) -> Origin:
        """``principal`` in the current request (or worker) context."""
        return cls(principal, request_id_var.get(), trace_var.get())


async def register_many(*, session: AsyncSession, outbox: Outbox, settings: CommonSettings,
                        items: Sequence[BeneficiaryCreate], principal: Principal | None = None,
                        origins: Sequence[Origin] | None = None) -> list[Any]:
    """``register`` for many people in one transaction, in order, with a few set-based statements instead of a
    round of them per person: for each item, the registration made (its columns, as attributes) or the error
    ``register`` would raise (``Unprocessable``, ``Conflict``).

    The same rules as one by one: the caller's scope and the community/household checks, national-ID uniqueness,
    and duplicate matching with the same blocking keys and ``compare``, against the registry *and* the items
    before it in ``items`` (as if each had been registered before the next). The records, their audit entries and
    their ``BeneficiaryRegistered`` events (the same as ``register``'s) are written with one INSERT per table.

    One ``principal`` registers them all (an import), or each item has its own ``origins[i]`` (a group commit of
    requests): then scope, candidates shown, audit actor and request id, and trace are each item's own.

    Concurrency: the blocks of all items are locked first (PostgreSQL, the same advisory locks as ``register``,
    in one order), then the registry is read, so a registration or another import of the same block commits
    either before (and is matched) or waits for this transaction. A national ID registered meanwhile under
    another block makes the unique index refuse the whole transaction (the caller retries it: nothing is kept).
    """
    if origins is None:
        assert principal is not None, "register_many needs a principal or one origin per item"
        origins = [Origin.current(principal)] * len(items)
    if not items:
        return []
    places = await _places(session, [o.principal for o in origins], items)
    names = [_person_name(data) for data in items]
    keys = [blocking_key(name) for name in names]
    band = range(-BIRTH_YEAR_BAND, BIRTH_YEAR_BAND + 1)
    checked = [i for i, place in enumerate(places) if not isinstance(place, Unprocessable)]
    await _lock_blocks(session, (keys[i] for i in checked))
    taken_ids = await _national_ids_on_file(session, settings, [
        items[i].national_id for i in checked if items[i].national_id])  # type: ignore[misc]
    registry = await _blocks(session, {(keys[i], items[i].date_of_birth.year + d) for i in checked for d in band})

    now = utcnow()
    results: list[Any] = []
    reviews: list[dict[str, Any]] = []
    earlier: dict[tuple[str, int], list[Any]] = defaultdict(list)  # registered by the items before
    taken_hashes: set[str] = set()
    created: list[tuple[Any, BeneficiaryCreate, Origin]] = []
    for data, name, key, place, origin in zip(items, names, keys, places, origins, strict=True):
        if isinstance(place, Unprocessable):
            results.append(place)
            continue
        # The record's columns, as attributes (a model instance costs more than the rest of the row).
        beneficiary = SimpleNamespace(**_new_beneficiary(settings, data, place, name, key, now))
        if data.national_id and (data.national_id in taken_ids or beneficiary.national_id_hash in taken_hashes):
            results.append(_national_id_conflict())
            continue
        year = beneficiary.birth_year
        found = []
        for row in [r for d in band for r in (*registry.get((key, year + d), ()), *earlier.get((key, year + d), ()))]:
            match = compare(name, _row_name(row))
            if match.score >= DUPLICATE_THRESHOLD:
                found.append(Found(id=row.id, governorate_pcode=row.governorate_pcode, match=match))
        found.sort(key=lambda f: f.match.score, reverse=True)
        if found and not data.confirm_not_duplicate:
            results.append(duplicate_conflict(origin.principal, found))
            continue
        results.append(beneficiary)
        created.append((beneficiary, data, origin))
        earlier[(key, year)].append(beneficiary)
        if beneficiary.national_id_hash:
            taken_hashes.add(beneficiary.national_id_hash)
        reviews += [_review_row(beneficiary.id, f, "registration") for f in found]
    if created:
        await session.execute(insert(Beneficiary.__table__), [vars(b) for b, _, _ in created])  # type: ignore[attr-defined]
        await session.execute(insert(AuditEntry.__table__), [  # type: ignore[attr-defined]
            dict(entity="beneficiary", entity_id=b.id, action="registered", actor=origin.principal.sub,
                 fields=json.dumps(sorted(_registered_fields(data))), request_id=origin.request_id, at=now)
            for b, data, origin in created])
        await session.execute(insert(OutboxMessage.__table__), [  # type: ignore[attr-defined]
            _outbox_row(outbox, _registered_event(b), subject_id=b.id, now=now, traceparent=origin.traceparent)
            for b, _, origin in created])
        after_commit(session, outbox.wakeup.set)
    await _queue_reviews(session, reviews, "registration")
    return results


async def get_beneficiary(*, session: AsyncSession, principal: Principal, beneficiary_id: str) -> Beneficiary:
    """A beneficiary in the caller's scope, else NotFound (out of scope looks like absent)."""
    return await get_in_scope(session, Beneficiary, beneficiary_id, principal, label="beneficiary")


async def read_beneficiary(*, reads: Reads, principal: Principal, beneficiary_id: str) -> Any:
    """``get_beneficiary`` for a request that only shows it: a read-only row (``public_fields`` renders it)."""
    return await read_in_scope(reads, Beneficiary, beneficiary_id, principal, label="beneficiary")


_TABLE: Any = Beneficiary.__table__  # type: ignore[attr-defined]
_LIST_FILTERS: Conditions = {
    "community_id": _TABLE.c.community_id, "governorate": _TABLE.c.governorate_pcode,
    "displacement_status": _TABLE.c.displacement_status, "merged_into_id": _TABLE.c.merged_into_id,
    "live": lambda _: _TABLE.c.merged_into_id.is_(None),
    # Every query token must appear in the normalised name chain (Arabic or Latin, any variant): at most 100
    # tokens in a 200-character query.
    **{f"q{i}": lambda pattern: _TABLE.c.search_key.like(pattern, escape="/") for i in range(100)},
}


def list_beneficiaries_query(*, principal: Principal, community_id: str | None, governorate: str | None,
                             displacement_status: str | None, q: str | None, include_merged: bool,
                             merged_into_id: str | None = None) -> tuple[Select[Any], dict[str, Any]]:
    """The list's statement and the values of its parameters (``shared.scope.list_in_scope``: the statement of
    each combination of filters built once, its values bound per request)."""
    tokens = normalize(q or "").split()
    return list_in_scope(Beneficiary, principal, _LIST_FILTERS, bound={
        "community_id": community_id, "governorate": governorate, "displacement_status": displacement_status,
        "merged_into_id": merged_into_id,
        **{f"q{i}": "%" + t.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
           for i, t in enumerate(tokens)}},
        shape={"live": None if merged_into_id or include_merged else True})


_MATCHED_FIELDS = frozenset({"first_name", "father_name", "grandfather_name", "family_name", "date_of_birth"})
_PLAIN_FIELDS = ("first_name", "father_name", "grandfather_name", "family_name", "sex", "date_of_birth",
                 "displacement_status", "phone")


async def update(*, session: AsyncSession, outbox: Outbox, settings: CommonSettings, principal: Principal,
                 beneficiary: Beneficiary, data: BeneficiaryUpdate) -> Beneficiary:
    """Apply a partial update (the caller has checked If-Match); records which fields changed."""
    if beneficiary.merged_into_id:
        raise Conflict(f"This record was merged into {beneficiary.merged_into_id}; update that one")
    changed: set[str] = set()
    fields = data.model_fields_set
    for name in _PLAIN_FIELDS:
        if name in fields and getattr(beneficiary, name) != getattr(data, name):
            setattr(beneficiary, name, getattr(data, name))
            changed.add(name)
    if "community_id" in fields and data.community_id != beneficiary.community_id:
        community = await _community_for_write(session, principal, data.community_id or "")
        beneficiary.community_id = community.id
        beneficiary.district_pcode = community.district_pcode
        beneficiary.governorate_pcode = community.governorate_pcode
        changed.add("community_id")
        if "household_id" not in fields:
            beneficiary.household_id = None
    if "household_id" in fields and data.household_id != beneficiary.household_id:
        if data.household_id:
            await _household_for_write(session, principal, data.household_id, beneficiary.community_id)
        beneficiary.household_id = data.household_id
        changed.add("household_id")
    if "disability" in fields:
        new = data.disability.model_dump() if data.disability else None
        if new != beneficiary.disability:
            beneficiary.disability = new
            changed.add("disability")
    if "national_id" in fields:
        if data.national_id is None:
            if beneficiary.national_id_hash is not None:
                beneficiary.national_id_hash = beneficiary.national_id_key = None
                changed.add("national_id")
        else:
            holder = await _national_id_owner(session, settings, data.national_id)
            if holder is None:
                beneficiary.national_id_hash = keyed_hash(settings, data.national_id)
                beneficiary.national_id_key = current_chain(settings)
                changed.add("national_id")
            elif holder.id != beneficiary.id:
                raise _national_id_conflict()
    if not changed:
        return beneficiary
    beneficiary.birth_year = beneficiary.date_of_birth.year
    name = _person_name(beneficiary)
    beneficiary.search_key = search_key(name)
    beneficiary.blocking_key = blocking_key(name)
    beneficiary.updated_at = utcnow()
    session.add(beneficiary)
    await session.flush()  # the version-checked UPDATE: a concurrent change loses here (StaleDataError)
    audit(session, principal=principal, entity="beneficiary", entity_id=beneficiary.id, action="updated",
          fields=changed)
    outbox.emit(session, BeneficiaryUpdated(**_snapshot(beneficiary), changed_fields=sorted(changed)),
                subject_id=beneficiary.id)
    await session.flush()
    if changed & _MATCHED_FIELDS:  # a corrected name or birth date may reveal a duplicate: queue it for review
        await _lock_block(session, beneficiary.blocking_key)
        found = await probable_duplicates(session=session, name=name, birth_year=beneficiary.birth_year,
                                          exclude_id=beneficiary.id)
        await _queue_reviews(session, [_review_row(beneficiary.id, f, "update") for f in found], "update")
    return beneficiary


async def merge(*, session: AsyncSession, outbox: Outbox, principal: Principal, survivor_id: str,
                duplicate_id: str) -> Beneficiary:
    """Fold ``duplicate_id`` into ``survivor_id``: from then on everything counts them as one person."""
    if survivor_id == duplicate_id:
        raise _field_error("duplicate_id", "a record cannot be merged into itself")
    # Both rows locked in one order: crossed merges (A into B, B into A) queue instead of deadlocking, and
    # the second reads the first one's result (409 below); the version check backs this up.
    await lock_rows(session, Beneficiary, (survivor_id, duplicate_id))
    survivor = await get_beneficiary(session=session, principal=principal, beneficiary_id=survivor_id)
    try:
        duplicate = await get_beneficiary(session=session, principal=principal, beneficiary_id=duplicate_id)
    except NotFound:
        raise _field_error("duplicate_id", f"unknown beneficiary {duplicate_id!r}") from None
    if survivor.merged_into_id:
        raise Conflict(f"{survivor_id} was itself merged into {survivor.merged_into_id}")
    if duplicate.merged_into_id:
        raise Conflict(f"{duplicate_id} was already merged into {duplicate.merged_into_id}")
    now = utcnow()
    # Records already folded into the duplicate now point at the survivor.
    folded: Sequence[Beneficiary] = (await session.execute(
        select(Beneficiary).where(Beneficiary.merged_into_id == duplicate.id))).scalars().all()
    for record in folded:
        record.merged_into_id = survivor.id
    survivor_fields = {"merged_from"}
    if survivor.national_id_hash is None and duplicate.national_id_hash is not None:
        # The hash is unique: free it on the duplicate before the survivor takes it.
        moved = duplicate.national_id_hash, duplicate.national_id_key
        duplicate.national_id_hash = duplicate.national_id_key = None
        await session.flush()
        survivor.national_id_hash, survivor.national_id_key = moved
        survivor_fields.add("national_id")
    # One person: a withdrawal of consent on either record holds for the survivor.
    withdrawn = survivor.consent_withdrawn_on is None and duplicate.consent_withdrawn_on is not None
    if withdrawn:
        survivor.consent_withdrawn_on = duplicate.consent_withdrawn_on
        survivor.consent_withdrawal_reason = duplicate.consent_withdrawal_reason
        survivor_fields.add("consent_withdrawn_on")
    duplicate.merged_into_id = survivor.id
    for record in (survivor, duplicate):
        record.updated_at = now
    await session.flush()  # version-checked UPDATEs of both records
    audit(session, principal=principal, entity="beneficiary", entity_id=duplicate.id, action="merged_into",
          fields={"merged_into_id"})
    audit(session, principal=principal, entity="beneficiary", entity_id=survivor.id, action="merged",
          fields=survivor_fields)
    outbox.emit(session, BeneficiaryMerged(beneficiary_id=survivor.id, duplicate_id=duplicate.id, merged_at=now),
                subject_id=survivor.id)
    if withdrawn and survivor.consent_withdrawn_on is not None:
        outbox.emit(session, BeneficiaryConsentWithdrawn(beneficiary_id=survivor.id, revision=survivor.version,
                                                         withdrawn_on=survivor.consent_withdrawn_on),
                    subject_id=survivor.id)
    await session.flush()
    return survivor


async def withdraw_consent(*, session: AsyncSession, outbox: Outbox, principal: Principal, beneficiary: Beneficiary,
                           data: ConsentWithdrawal) -> Beneficiary:
    """Record that the person withdrew consent (once); other services then refuse new assistance for them."""
    if beneficiary.merged_into_id:
        raise Conflict(f"This record was merged into {beneficiary.merged_into_id}; withdraw consent on that one")
    if beneficiary.consent_withdrawn_on is not None:
        raise Conflict(f"Consent was already withdrawn on {beneficiary.consent_withdrawn_on.isoformat()}",
                       slug="consent-withdrawn")
    if data.withdrawn_on < beneficiary.consent_obtained_on:
        raise _field_error("withdrawn_on", "consent cannot be withdrawn before it was obtained")
    beneficiary.consent_withdrawn_on = data.withdrawn_on
    beneficiary.consent_withdrawal_reason = data.reason
    beneficiary.updated_at = utcnow()
    session.add(beneficiary)
    await session.flush()  # the version-checked UPDATE: a withdrawal raced twice happens once
    audit(session, principal=principal, entity="beneficiary", entity_id=beneficiary.id, action="consent_withdrawn",
          fields=data.model_fields_set)
    outbox.emit(session, BeneficiaryConsentWithdrawn(beneficiary_id=beneficiary.id, revision=beneficiary.version,
                                                     withdrawn_on=data.withdrawn_on), subject_id=beneficiary.id)
    await session.flush()
    return beneficiary


async def rotate_national_id_key(*, session: AsyncSession, settings: CommonSettings) -> int:
    """Wrap every national-ID hash not yet under the current key (no clear value needed); returns how many."""
    await advisory_xact_lock(session, "beneficiaries-pii-rotate")
    rows = (await session.execute(select(Beneficiary.id, Beneficiary.national_id_hash, Beneficiary.national_id_key)
                                  .where(Beneficiary.national_id_hash.is_not(None)))).all()  # type: ignore[union-attr]
    for chain in {chain for _, _, chain in rows}:
        check_chain(settings, chain)  # refuse before changing anything when a key is missing
    table = Beneficiary.__table__  # type: ignore[attr-defined]
    rotated = 0
    for id_, old_hash, chain in rows:
        if not needs_rewrap(settings, chain):
            continue
        new_hash, new_chain = rewrap(settings, old_hash, chain)
        # Conditioned on the old values: a record whose ID changed meanwhile already has a current hash.
        result = await session.execute(table.update().where(
            table.c.id == id_, table.c.national_id_hash == old_hash, table.c.national_id_key == chain,
        ).values(national_id_hash=new_hash, national_id_key=new_chain))
        rotated += result.rowcount
    return rotated


PERSONAL_FIELDS = ("first_name", "father_name", "grandfather_name", "family_name", "phone", "national_id",
                   "date_of_birth", "consent_withdrawal_reason")
RETENTION = Principal(sub="retention", roles=frozenset({"admin"}), governorates=frozenset({"*"}))


def _erase(*, session: AsyncSession, outbox: Outbox, principal: Principal, beneficiary: Beneficiary, on: date,
           reason: str) -> None:
    """Clear every personal field in place (no copy is kept anywhere: irreversible). What the anonymous counts
    need stays: sex, birth year (the birth date becomes 1 January of it), displacement status, place,
    disability flags, consent dates, merges."""
    beneficiary.first_name = beneficiary.father_name = beneficiary.search_key = beneficiary.blocking_key = ""
    beneficiary.grandfather_name = beneficiary.family_name = beneficiary.phone = None
    beneficiary.national_id_hash = beneficiary.national_id_key = beneficiary.consent_withdrawal_reason = None
    beneficiary.date_of_birth = date(beneficiary.birth_year, 1, 1)
    beneficiary.erased_on = on
    beneficiary.updated_at = utcnow()
    session.add(beneficiary)
    audit(session, principal=principal, entity="beneficiary", entity_id=beneficiary.id, action=f"erased_{reason}",
          fields=PERSONAL_FIELDS)


async def records_of_person(*, session: AsyncSession, beneficiary: Beneficiary) -> list[Beneficiary]:
    """The record and every record merged into it (the same person registered more than once)."""
    merged = (await session.execute(select(Beneficiary).where(
        Beneficiary.merged_into_id == beneficiary.id))).scalars().all()  # type: ignore[arg-type]
    return [beneficiary, *merged]


async def erase(*, session: AsyncSession, outbox: Outbox, principal: Principal, beneficiary: Beneficiary,
                data: ErasureRequest) -> Beneficiary:
    """Erase the person's personal data on their request, on this record and the records merged into it (once:
    a second request is 409)."""
    if beneficiary.erased_on is not None:
        raise Conflict(f"The personal data was already erased on {beneficiary.erased_on.isoformat()}",
                       slug="already-erased")
    for record in await records_of_person(session=session, beneficiary=beneficiary):
        if record.erased_on is not None:
            continue
        _erase(session=session, outbox=outbox, principal=principal, beneficiary=record, on=data.requested_on,
               reason="request")
        await session.flush()  # the version-checked UPDATE: an erasure raced twice happens once
        outbox.emit(session, BeneficiaryErased(beneficiary_id=record.id, revision=record.version,
                                               reason="request"), subject_id=record.id)
    await session.flush()
    return beneficiary


async def erase_expired(session: AsyncSession, settings: CommonSettings) -> int:
    """Housekeeping: erase the personal data of people whose record has not changed for
    ``personal_data_retention_days`` (unset: nothing). Returns how many were erased."""
    days = getattr(settings, "personal_data_retention_days", None)
    if not days:
        return 0
    outbox = Outbox(settings)
    cutoff = utcnow() - timedelta(days=days)
    rows = (await session.execute(select(Beneficiary).where(
        Beneficiary.erased_on.is_(None), Beneficiary.updated_at < cutoff,  # type: ignore[union-attr]
    ).limit(500).with_for_update(skip_locked=True))).scalars().all()  # replicas' housekeepers share the work
    for beneficiary in rows:
        _erase(session=session, outbox=outbox, principal=RETENTION, beneficiary=beneficiary, on=utcnow().date(),
               reason="retention")
        await session.flush()
        outbox.emit(session, BeneficiaryErased(beneficiary_id=beneficiary.id, revision=beneficiary.version,
                                               reason="retention"), subject_id=beneficiary.id)
    return len(rows)
# -- the duplicate review queue ---------------------------------------------------------------------
_Left = aliased(Beneficiary, name="left_record")
_Right = aliased(Beneficiary, name="right_record")


def _reviews_in_scope(stmt: Any, principal: Principal, status: str | None) -> Any:
    """``stmt`` over reviews joined to both records: only pairs whose two records the caller may see (a review
    names both people), and ``status`` ("open" means still open with both records unmerged)."""
    stmt = (stmt.join(_Left, _Left.id == DuplicateReview.beneficiary_id)
            .join(_Right, _Right.id == DuplicateReview.candidate_id))
    scope = principal.scope_filter()
    if scope is not None:
        stmt = stmt.where(_Left.governorate_pcode.in_(scope), _Right.governorate_pcode.in_(scope))
    if status == "open":
        stmt = stmt.where(DuplicateReview.status == "open", _Left.merged_into_id.is_(None),  # type: ignore[union-attr]
                          _Right.merged_into_id.is_(None))  # type: ignore[union-attr]
    elif status:
        stmt = stmt.where(DuplicateReview.status == status)
    return stmt


def list_reviews_query(*, principal: Principal, status: str | None) -> Select[Any]:
    return _reviews_in_scope(select(DuplicateReview), principal, status)


async def review_pairs(*, session: AsyncSession, reviews: Sequence[DuplicateReview]) -> dict[str, Beneficiary]:
    """The records of these reviews, by id, in one query."""
    ids = {r.beneficiary_id for r in reviews} | {r.candidate_id for r in reviews}
    if not ids:
        return {}
    rows = await session.execute(select(Beneficiary).where(Beneficiary.id.in_(ids)))  # type: ignore[attr-defined]
    return {b.id: b for b in rows.scalars()}


def review_public(review: DuplicateReview, records: dict[str, Beneficiary]) -> DuplicateReviewPublic:
    """Both records side by side, with the score and reasons under the current rules."""
    left, right = records[review.beneficiary_id], records[review.candidate_id]
    match = compare(_person_name(left), _person_name(right))
    return DuplicateReviewPublic(
        id=review.id, status=review.status, source=review.source, score=match.score, score_when_found=review.score,
        reasons=match.reasons + _place_and_birth(left, right), beneficiary=to_public(left),
        candidate=to_public(right), survivor_id=review.survivor_id, decided_by=review.decided_by,
        decided_at=review.decided_at, created_at=review.created_at, version=review.version)


def _place_and_birth(a: Beneficiary, b: Beneficiary) -> list[str]:
    """Facts beside the name chain that a reviewer weighs (place never blocks: people move)."""
    born = ("date of birth: identical" if a.date_of_birth == b.date_of_birth
            else f"birth year: {'same' if a.birth_year == b.birth_year else 'different'} "
                 f"({a.date_of_birth.isoformat()} ~ {b.date_of_birth.isoformat()})")
    if a.district_pcode == b.district_pcode:
        place = "registered in the same district"
    elif a.governorate_pcode == b.governorate_pcode:
        place = "registered in another district of the same governorate"
    else:
        place = "registered in another governorate"
    return [born, place, f"sex: {'same' if a.sex == b.sex else 'different'}"]


async def get_review(*, session: AsyncSession, principal: Principal,
                     review_id: str) -> tuple[DuplicateReview, dict[str, Beneficiary]]:
    """A review whose two records the caller may see, else NotFound."""
    review = (await session.execute(_reviews_in_scope(select(DuplicateReview), principal, None)
                                    .where(DuplicateReview.id == review_id))).scalars().first()
    if review is None:
        raise NotFound(f"No duplicate review {review_id}")
    return review, await review_pairs(session=session, reviews=[review])


async def decide_review(*, session: AsyncSession, outbox: Outbox, principal: Principal, review_id: str,
                        data: DuplicateDecision) -> tuple[DuplicateReview, dict[str, Beneficiary]]:
    """Decide an open review once: the two records are distinct people (the pair is never flagged again) or one
    person (merged by ``merge``, with its rules and event). Audited and counted."""
    await lock_rows(session, DuplicateReview, [review_id])  # two reviewers deciding at once: the second waits
    review, records = await get_review(session=session, principal=principal, review_id=review_id)
    if review.status != "open":
        raise Conflict(f"This review was already decided ({review.status}) by {review.decided_by}",
                       slug="review-decided")
    pair = {review.beneficiary_id, review.candidate_id}
    if data.decision == "merge":
        if data.survivor_id not in pair:
            msg = "survivor_id must be one of the two records of the review"
            raise Unprocessable(msg, errors=[{"loc": ["body", "survivor_id"], "msg": msg}])
        duplicate_id = (pair - {data.survivor_id}).pop()
        survivor = await merge(session=session, outbox=outbox, principal=principal, survivor_id=data.survivor_id,
                               duplicate_id=duplicate_id)
        records = {**records, survivor.id: survivor}
        review.status, review.survivor_id = "merged", survivor.id
    else:
        if any(records[id_].merged_into_id for id_ in pair):
            raise Conflict("One of the two records was merged meanwhile; this review is closed",
                           slug="review-decided")
        review.status = "distinct"
    review.decided_by, review.decided_at = principal.sub, utcnow()
    session.add(review)
    await session.flush()  # version-checked: a decision raced twice happens once
    audit(session, principal=principal, entity="duplicate_review", entity_id=review.id,
          action=f"decided_{review.status}",
          fields={"status", "survivor_id"} if data.decision == "merge" else {"status"})
    decision = review.status
    after_commit(session, lambda: REVIEWS_DECIDED.labels(decision).inc())
    await session.flush()
    return review, records


async def review_summary(*, session: AsyncSession, principal: Principal) -> DuplicateReviewSummary:
    """How the queue stands for the caller's governorates: open, decided, and how long pairs wait."""
    stmt = _reviews_in_scope(select(DuplicateReview.status, DuplicateReview.created_at, DuplicateReview.decided_at,
                                    _Left.merged_into_id, _Right.merged_into_id), principal, None)
    now = utcnow()
    open_ages: list[float] = []
    decision_times: list[float] = []
    decided: dict[str, int] = defaultdict(int)
    closed_by_merge = 0
    for status, created_at, decided_at, left_merged, right_merged in (await session.execute(stmt)).all():
        if status == "open" and (left_merged or right_merged):
            closed_by_merge += 1
        elif status == "open":
            open_ages.append((now - created_at).total_seconds())
        else:
            decided[status] += 1
            decision_times.append((decided_at - created_at).total_seconds())
    return DuplicateReviewSummary(
        open=len(open_ages), decided=sum(decided.values()), distinct=decided["distinct"], merged=decided["merged"],
        closed_by_other_merge=closed_by_merge,
        median_open_age_seconds=round(statistics.median(open_ages), 1) if open_ages else None,
        median_decision_seconds=round(statistics.median(decision_times), 1) if decision_times else None)


async def rescan_duplicates(*, session: AsyncSession, batch_size: int = 2000) -> RescanResult:
    """Re-run duplicate detection over the whole registry with the current rules and queue every probable pair
    not listed yet. Idempotent: a second run finds the same pairs and adds none; pairs decided stay decided.

    Blocking keys are first recomputed (the rules may have changed since a record was written).
    """
    await advisory_xact_lock(session, "beneficiaries-duplicate-rescan")
    table: Any = Beneficiary.__table__  # type: ignore[attr-defined]
    rows = (await session.execute(select(
        table.c.id, table.c.first_name, table.c.father_name, table.c.grandfather_name, table.c.family_name,
        table.c.birth_year, table.c.blocking_key, table.c.merged_into_id, table.c.governorate_pcode,
        table.c.created_at))).all()
    stale = []
    blocks: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        key = blocking_key(_row_name(row))
        if key != row.blocking_key:
            stale.append({"pid": row.id, "key": key})
        if row.merged_into_id is None:
            blocks[key].append(row)
    for start in range(0, len(stale), batch_size):
        # A derived column: no version bump, the record itself does not change.
        await session.execute(table.update().where(table.c.id == bindparam("pid"))
                              .values(blocking_key=bindparam("key")), stale[start:start + batch_size])
    listed = set((await session.execute(select(DuplicateReview.pair))).scalars())
    compared = 0
    new: list[dict[str, Any]] = []
    for people in blocks.values():
        people.sort(key=lambda r: (r.birth_year, r.created_at, r.id))
        for i, earlier in enumerate(people):
            for later in people[i + 1:]:
                if later.birth_year - earlier.birth_year > BIRTH_YEAR_BAND:
                    break
                if review_pair(earlier.id, later.id) in listed:
                    continue
                compared += 1
                match = compare(_row_name(later), _row_name(earlier))
                if match.score >= DUPLICATE_THRESHOLD:
                    later_first = (later.created_at, later.id) >= (earlier.created_at, earlier.id)
                    newer, older = (later, earlier) if later_first else (earlier, later)
                    new.append(_review_row(newer.id, Found(id=older.id, governorate_pcode=older.governorate_pcode,
                                                           match=match), "rescan"))
    added = await _queue_reviews(session, new, "rescan")
    return RescanResult(people=len(rows), keys_recomputed=len(stale), pairs_compared=compared, reviews_added=added)
