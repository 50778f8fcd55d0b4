"""Domain logic of the beneficiaries service. Functions add and flush; the caller's session commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.beneficiaries import gazetteer
from services.beneficiaries.matching import DUPLICATE_THRESHOLD, PersonName, compare, normalize, search_key
from services.beneficiaries.models import Beneficiary, Community, Household
from services.beneficiaries.schemas import (
    BeneficiaryCreate,
    BeneficiaryPublic,
    BeneficiaryUpdate,
    Candidate,
    CommunityCreate,
    ConsentPublic,
    ConsentWithdrawal,
    Disability,
    ErasureRequest,
    HouseholdCreate,
)
from shared.audit import audit
from shared.auth import Principal
from shared.concurrency import lock_rows
from shared.db import advisory_xact_lock, utcnow
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events.beneficiaries import (
    BeneficiaryConsentWithdrawn,
    BeneficiaryErased,
    BeneficiaryMerged,
    BeneficiaryRegistered,
    BeneficiaryUpdated,
    CommunityCreated,
)
from shared.outbox import Outbox
from shared.pii import check_chain, current_chain, keyed_hash, needs_rewrap, rewrap
from shared.scope import get_in_scope, select_filtered, select_in_scope
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
def to_public(b: Beneficiary) -> BeneficiaryPublic:
    return BeneficiaryPublic(
        id=b.id, first_name=b.first_name, father_name=b.father_name, grandfather_name=b.grandfather_name,
        family_name=b.family_name, sex=b.sex, date_of_birth=b.date_of_birth,  # type: ignore[arg-type]
        displacement_status=b.displacement_status,  # type: ignore[arg-type]
        community_id=b.community_id, household_id=b.household_id, district_pcode=b.district_pcode,
        governorate_pcode=b.governorate_pcode, phone=b.phone, has_national_id=b.national_id_hash is not None,
        disability=Disability(**b.disability) if b.disability else None,
        consent=ConsentPublic(given=b.consent_withdrawn_on is None, obtained_on=b.consent_obtained_on,
                              withdrawn_on=b.consent_withdrawn_on, withdrawal_reason=b.consent_withdrawal_reason),
        merged_into_id=b.merged_into_id, erased_on=b.erased_on,
        version=b.version, created_at=b.created_at, updated_at=b.updated_at,
    )


def _person_name(b: Beneficiary | BeneficiaryCreate) -> PersonName:
    return PersonName(first_name=b.first_name, father_name=b.father_name,
                      grandfather_name=b.grandfather_name, family_name=b.family_name)


def _has_disability(disability: dict[str, Any] | None) -> bool:
    return disability is not None and Disability(**disability).has_disability


def _snapshot(b: Beneficiary) -> dict[str, Any]:
    """The pseudonymous facts every beneficiary event carries."""
    return dict(beneficiary_id=b.id, revision=b.version, sex=b.sex, birth_year=b.birth_year,
                displacement_status=b.displacement_status, community_id=b.community_id,
                household_id=b.household_id, district_pcode=b.district_pcode,
                governorate_pcode=b.governorate_pcode, has_disability=_has_disability(b.disability))


async def _lock_block(session: AsyncSession, district_pcode: str, birth_year: int) -> None:
    """Serialise registrations in one block, so two clerks can't both miss each other."""
    await advisory_xact_lock(session, f"beneficiary-block:{district_pcode}:{birth_year}")


async def find_candidates(*, session: AsyncSession, name: PersonName, district_pcode: str, birth_year: int,
                          exclude_id: str | None = None) -> list[Candidate]:
    """Probable duplicates: same district and birth year, then scored on the normalised name chain."""
    stmt = select(Beneficiary).where(Beneficiary.district_pcode == district_pcode,
                                     Beneficiary.birth_year == birth_year,
                                     Beneficiary.merged_into_id.is_(None))  # type: ignore[union-attr]
    if exclude_id:
        stmt = stmt.where(Beneficiary.id != exclude_id)
    candidates = []
    for other in (await session.execute(stmt)).scalars():
        match = compare(name, _person_name(other))
        if match.score >= DUPLICATE_THRESHOLD:
            candidates.append(Candidate(id=other.id, score=round(match.score, 3), reasons=match.reasons))
    return sorted(candidates, key=lambda c: c.score, reverse=True)


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


async def register(*, session: AsyncSession, outbox: Outbox, settings: CommonSettings, principal: Principal,
                   data: BeneficiaryCreate) -> Beneficiary:
    """Register a person, refusing probable duplicates unless the caller confirms they are not one."""
    community = await _community_for_write(session, principal, data.community_id)
    if data.household_id:
        await _household_for_write(session, principal, data.household_id, community.id)
    birth_year = data.date_of_birth.year
    await _lock_block(session, community.district_pcode, birth_year)

    if data.national_id and await _national_id_owner(session, settings, data.national_id) is not None:
        raise _national_id_conflict()
    if not data.confirm_not_duplicate:
        candidates = await find_candidates(session=session, name=_person_name(data),
                                           district_pcode=community.district_pcode, birth_year=birth_year)
        # Candidates share the district, hence the governorate: the caller may see them.
        if candidates:
            raise Conflict("This person may already be registered. Check the candidates, or send the "
                           'request again with "confirm_not_duplicate": true.', slug="probable-duplicate",
                           candidates=[c.model_dump() for c in candidates])

    now = utcnow()
    beneficiary = Beneficiary(
        **data.model_dump(include={"first_name", "father_name", "grandfather_name", "family_name", "sex",
                                   "date_of_birth", "displacement_status", "household_id", "phone"}),
        search_key=search_key(_person_name(data)), birth_year=birth_year, community_id=community.id,
        district_pcode=community.district_pcode, governorate_pcode=community.governorate_pcode,
        national_id_hash=keyed_hash(settings, data.national_id) if data.national_id else None,
        national_id_key=current_chain(settings) if data.national_id else None,
        disability=data.disability.model_dump() if data.disability else None,
        consent_obtained_on=data.consent.obtained_on, created_at=now, updated_at=now,
    )
    session.add(beneficiary)
    audit(session, principal=principal, entity="beneficiary", entity_id=beneficiary.id, action="registered",
          fields=data.model_fields_set - {"confirm_not_duplicate"})
    outbox.emit(session, BeneficiaryRegistered(**_snapshot(beneficiary), registered_at=now),
                subject_id=beneficiary.id)
    await session.flush()
    return beneficiary


async def get_beneficiary(*, session: AsyncSession, principal: Principal, beneficiary_id: str) -> Beneficiary:
    """A beneficiary in the caller's scope, else NotFound (out of scope looks like absent)."""
    return await get_in_scope(session, Beneficiary, beneficiary_id, principal, label="beneficiary")


def list_beneficiaries_query(*, principal: Principal, community_id: str | None, governorate: str | None,
                             displacement_status: str | None, q: str | None,
                             include_merged: bool, merged_into_id: str | None = None) -> Select[Any]:
    stmt = select_in_scope(Beneficiary, principal)
    if community_id:
        stmt = stmt.where(Beneficiary.community_id == community_id)
    if governorate:
        stmt = stmt.where(Beneficiary.governorate_pcode == governorate)
    if displacement_status:
        stmt = stmt.where(Beneficiary.displacement_status == displacement_status)
    if merged_into_id:
        stmt = stmt.where(Beneficiary.merged_into_id == merged_into_id)
    elif not include_merged:
        stmt = stmt.where(Beneficiary.merged_into_id.is_(None))  # type: ignore[union-attr]
    for token in normalize(q or "").split():
        # Every query token must appear in the normalised name chain (Arabic or Latin, any variant).
        stmt = stmt.where(Beneficiary.search_key.contains(token, autoescape=True))  # type: ignore[attr-defined]
    return stmt


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
    beneficiary.search_key = search_key(_person_name(beneficiary))
    beneficiary.updated_at = utcnow()
    session.add(beneficiary)
    await session.flush()  # the version-checked UPDATE: a concurrent change loses here (StaleDataError)
    audit(session, principal=principal, entity="beneficiary", entity_id=beneficiary.id, action="updated",
          fields=changed)
    outbox.emit(session, BeneficiaryUpdated(**_snapshot(beneficiary), changed_fields=sorted(changed)),
                subject_id=beneficiary.id)
    await session.flush()
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
    beneficiary.first_name = beneficiary.father_name = beneficiary.search_key = ""
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
