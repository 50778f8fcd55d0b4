"""Domain logic of the feedback service. Functions add and flush; the caller's session commits.

Visibility: a case of a sensitive category (``sea``, ``fraud_corruption``, ``staff_misconduct``) exists only
for ``psea_focal_point``; the other cases for ``cfm_officer``, ``programme_manager`` and ``admin``. Anyone else,
admin included for sensitive cases, gets the same 404 as for a case that does not exist, and never finds it in
a list or a count (``visible``). Governorate scope follows the case's community; a case taken without a place
is seen only by tokens scoped to every governorate.

Every transition is one version-checked UPDATE (``shared.concurrency``): raced twice, it happens once (the
loser gets 409) with one event. Time comes from one clock (``now``, the app's ``state.clock`` in tests).
"""

from __future__ import annotations

import hmac
import json
import math
import operator
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, bindparam, false, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from services.feedback.config import ORDINARY_LEVEL, SENSITIVE_LEVEL, FeedbackSettings, ServiceLevel
from services.feedback.models import CommunityActivity, Feedback, FeedbackHistory, PinThrottle, ResourceCentre
from services.feedback.schemas import (
    CommunityActivityCreate,
    CommunityActivityPublic,
    CountItem,
    Counts,
    FeedbackCreate,
    FeedbackPublic,
    FeedbackSummary,
    FollowUpActionPublic,
    HistoryEntry,
    ParticipantsPublic,
    PublicStatus,
    Referral,
    ResourceCentreCreate,
    ResourceCentreUpdate,
    ResponseCreate,
    ServiceLevelPublic,
    StatusChange,
)
from shared.audit import AuditEntry, audit
from shared.auth import Principal
from shared.concurrency import touch
from shared.db import Reads, utcnow
from shared.errors import Conflict, NotFound, TooManyRequests, Unprocessable
from shared.events.feedback import (
    SENSITIVE_CATEGORIES,
    CommunityActivityRecorded,
    FeedbackReceived,
    FeedbackStatusChanged,
    ResourceCentreCreated,
    ResourceCentreUpdated,
)
from shared.outbox import Outbox
from shared.peers import Beneficiaries
from shared.pii import current_chain, keyed_hash, seal, unseal
from shared.scope import Conditions, get_in_scope, list_in_scope, read_in_scope

ORDINARY_HANDLERS = frozenset({"cfm_officer", "programme_manager", "admin"})
SENSITIVE_HANDLERS = frozenset({"psea_focal_point"})
# Counts of ordinary cases are also for monitoring and evaluation (no case is shown to them).
ORDINARY_COUNTERS = ORDINARY_HANDLERS | {"me_officer", "viewer"}
CATEGORIES = ("appreciation", "information_request", "assistance_request", "minor_dissatisfaction",
              "major_dissatisfaction", "sea", "fraud_corruption", "staff_misconduct", "safety_security",
              "out_of_scope")
# Where a case may go from each status (the same status again is not a transition).
TRANSITIONS: dict[str, frozenset[str]] = {
    "received": frozenset({"acknowledged", "in_progress", "referred", "resolved"}),
    "acknowledged": frozenset({"in_progress", "referred", "resolved"}),
    "in_progress": frozenset({"referred", "resolved"}),
    "referred": frozenset({"in_progress", "resolved"}),
    "resolved": frozenset({"closed", "in_progress"}),  # closing the loop, or reopening
    "closed": frozenset(),
}
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read out on a phone
REFERENCE_PATTERN = r"^FB-[2-9A-HJKMNP-Z]{8}$"
PIN_DIGITS = 6


def _field_error(field: str, msg: str) -> Unprocessable:
    return Unprocessable(msg, errors=[{"loc": ["body", field], "msg": msg}])


# -- service levels ---------------------------------------------------------------------------------
def service_level(settings: FeedbackSettings, category: str) -> ServiceLevel:
    """The levels of a category: configured, else 7 and 30 days (24 and 72 hours when sensitive)."""
    configured = settings.feedback_service_levels.get(category)
    if configured is not None:
        return configured
    return SENSITIVE_LEVEL if category in SENSITIVE_CATEGORIES else ORDINARY_LEVEL


def service_levels(settings: FeedbackSettings, principal: Principal) -> list[ServiceLevelPublic]:
    return [ServiceLevelPublic(category=c, sensitive=c in SENSITIVE_CATEGORIES,  # type: ignore[arg-type]
                               **service_level(settings, c).model_dump())
            for c in CATEGORIES if principal.has_any(SENSITIVE_HANDLERS if c in SENSITIVE_CATEGORIES
                                                      else ORDINARY_COUNTERS)]


def acknowledged_within(case: Feedback) -> bool | None:
    return None if case.acknowledged_at is None else case.acknowledged_at <= case.acknowledge_due_at


def resolved_within(case: Feedback) -> bool | None:
    return None if case.resolved_at is None else case.resolved_at <= case.resolve_due_at


def is_overdue(case: Feedback, now: datetime) -> bool:
    return ((case.acknowledged_at is None and now > case.acknowledge_due_at)
            or (case.resolved_at is None and case.status != "closed" and now > case.resolve_due_at))


# -- visibility -------------------------------------------------------------------------------------
def _may_see_category(principal: Principal, category: str) -> bool:
    sensitive = category in SENSITIVE_CATEGORIES
    return principal.has_any(SENSITIVE_HANDLERS if sensitive else ORDINARY_HANDLERS)


def visible(principal: Principal, ordinary: frozenset[str] = ORDINARY_HANDLERS) -> Any:
    """The cases this principal may know exist (before governorate scope)."""
    return _of_kinds(_visible_kinds(principal, ordinary))


def _visible_kinds(principal: Principal, ordinary: frozenset[str] = ORDINARY_HANDLERS) -> tuple[bool, bool]:
    """Whether this principal may know of ordinary cases, and of sensitive ones."""
    return principal.has_any(ordinary), principal.has_any(SENSITIVE_HANDLERS)


def _of_kinds(kinds: tuple[bool, bool]) -> Any:
    ordinary, sensitive = kinds
    clauses = []
    if ordinary:
        clauses.append(Feedback.sensitive.is_(False))  # type: ignore[attr-defined]
    if sensitive:
        clauses.append(Feedback.sensitive.is_(True))  # type: ignore[attr-defined]
    return or_(*clauses) if clauses else false()


async def get_feedback(*, session: AsyncSession, principal: Principal, feedback_id: str) -> Feedback:
    """A case the caller may see, else 404 (absent, outside the governorates, or sensitive for another role)."""
    case = await session.get(Feedback, feedback_id)
    if case is None or not principal.sees(case.governorate_pcode) or not _may_see_category(principal,
                                                                                             case.category):
        raise NotFound(f"No feedback {feedback_id}")
    return case


# -- rendering --------------------------------------------------------------------------------------
def _opened(settings: FeedbackSettings, sealed: str | None) -> str | None:
    return None if sealed is None else unseal(settings, sealed)


def to_summary(case: Feedback, now: datetime) -> FeedbackSummary:
    return FeedbackSummary(
        id=case.id, reference=case.reference, channel=case.channel, category=case.category,  # type: ignore[arg-type]
        sensitive=case.sensitive, anonymous=case.anonymous, status=case.status,  # type: ignore[arg-type]
        community_id=case.community_id, district_pcode=case.district_pcode, governorate_pcode=case.governorate_pcode,
        resource_centre_id=case.resource_centre_id, received_at=case.received_at,
        acknowledge_due_at=case.acknowledge_due_at, resolve_due_at=case.resolve_due_at,
        acknowledged_at=case.acknowledged_at, resolved_at=case.resolved_at, closed_at=case.closed_at,
        acknowledged_within_service_level=acknowledged_within(case),
        resolved_within_service_level=resolved_within(case), overdue=is_overdue(case, now),
        responded_at=case.responded_at, referred_at=case.referred_at, referral_consent=case.referral_consent,
        satisfaction=case.satisfaction, version=case.version)  # type: ignore[arg-type]


def to_public(settings: FeedbackSettings, case: Feedback, now: datetime) -> FeedbackPublic:
    referral = None
    if case.referred_to_sealed is not None and case.referred_at is not None:
        referral = Referral(referred_to=unseal(settings, case.referred_to_sealed),
                            consent=bool(case.referral_consent), referred_at=case.referred_at)
    return FeedbackPublic(**to_summary(case, now).model_dump(), description=unseal(settings, case.description_sealed),
                          contact=_opened(settings, case.contact_sealed),
                          response=_opened(settings, case.response_sealed), referral=referral)


def _snapshot(case: Feedback) -> dict[str, Any]:
    return dict(feedback_id=case.id, revision=case.version, status=case.status, category=case.category,
                channel=case.channel, sensitive=case.sensitive, community_id=case.community_id,
                district_pcode=case.district_pcode, governorate_pcode=case.governorate_pcode,
                resource_centre_id=case.resource_centre_id, received_on=case.received_at.date(),
                acknowledged_within_service_level=acknowledged_within(case),
                resolved_within_service_level=resolved_within(case))


# -- intake -----------------------------------------------------------------------------------------
def new_reference() -> str:
    return "FB-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


def new_pin() -> str:
    return f"{secrets.randbelow(10 ** PIN_DIGITS):0{PIN_DIGITS}d}"


def _pin_hash(settings: FeedbackSettings, reference: str, pin: str, chain: str | None = None) -> str:
    return keyed_hash(settings, f"{reference}:{pin}", chain)


async def _centre_for_field(session: AsyncSession, principal: Principal, centre_id: str) -> ResourceCentre:
    try:
        return await get_in_scope(session, ResourceCentre, centre_id, principal, label="resource centre")
    except NotFound:
        raise _field_error("resource_centre_id", "unknown resource centre") from None


async def submit(*, session: AsyncSession, outbox: Outbox, principal: Principal, peers: Beneficiaries,
                 settings: FeedbackSettings, now: datetime, data: FeedbackCreate) -> tuple[Feedback, str]:
    """Take a case in; returns it with its one-time PIN (only the PIN's keyed hash is kept). The community is
    asked of the beneficiaries service (unknown or out of scope 422); without one, a named resource centre's
    community is the case's."""
    centre = await _centre_for_field(session, principal, data.resource_centre_id) if data.resource_centre_id else None
    place: tuple[str | None, str | None, str | None] = (None, None, None)
    if data.community_id is not None:
        community = await peers.community(data.community_id)
        place = (community.id, community.district_pcode, community.governorate_pcode)
    elif centre is not None:
        place = (centre.community_id, centre.district_pcode, centre.governorate_pcode)
    level = service_level(settings, data.category)
    reference, pin = new_reference(), new_pin()
    case = Feedback(
        reference=reference, channel=data.channel, category=data.category,
        sensitive=data.category in SENSITIVE_CATEGORIES, description_sealed=seal(settings, data.description),
        anonymous=data.anonymous, contact_sealed=None if data.contact is None else seal(settings, data.contact),
        pin_hash=_pin_hash(settings, reference, pin), pin_key_chain=current_chain(settings),
        community_id=place[0], district_pcode=place[1], governorate_pcode=place[2],
        resource_centre_id=centre.id if centre else None, status="received", received_at=now,
        acknowledge_due_at=now + timedelta(hours=level.acknowledge_hours),
        resolve_due_at=now + timedelta(hours=level.resolve_hours))
    session.add(case)
    await session.flush()
    session.add(FeedbackHistory(feedback_id=case.id, status="received", actor=principal.sub, at=now))
    audit(session, principal=principal, entity="feedback", entity_id=case.id, action="received",
          fields=data.model_fields_set)
    outbox.emit(session, FeedbackReceived(**_snapshot(case)), subject_id=case.id)
    return case, pin


# -- reading ----------------------------------------------------------------------------------------
_CASE = Feedback.__table__.c  # type: ignore[attr-defined]
_LATE = or_(and_(_CASE.acknowledged_at.is_(None), _CASE.acknowledge_due_at < bindparam("now")),
            and_(_CASE.resolved_at.is_(None), _CASE.status != "closed", _CASE.resolve_due_at < bindparam("now")))
_CASE_FILTERS: Conditions = {
    "status": _CASE.status, "category": _CASE.category, "channel": _CASE.channel, "community_id": _CASE.community_id,
    "governorate": _CASE.governorate_pcode, "resource_centre_id": _CASE.resource_centre_id,
    "received_from": (_CASE.received_at, operator.ge), "received_to": (_CASE.received_at, operator.lt),
    "visible": _of_kinds, "overdue": lambda late: _LATE if late else ~_LATE}


def list_feedback_query(*, principal: Principal, now: datetime, status: str | None, category: str | None,
                        channel: str | None, community_id: str | None, governorate: str | None,
                        resource_centre_id: str | None, received_from: datetime | None,
                        received_to: datetime | None, overdue: bool | None) -> tuple[Select[Any], dict[str, Any]]:
    """The cases the caller may see (its governorates, and sensitive ones for the PSEA focal point only): the
    statement (built once per combination of filters and of the caller's kinds of cases) and its values."""
    stmt, params = list_in_scope(Feedback, principal, _CASE_FILTERS, bound=dict(
        status=status, category=category, channel=channel, community_id=community_id, governorate=governorate,
        resource_centre_id=resource_centre_id, received_from=received_from, received_to=received_to),
        shape={"visible": _visible_kinds(principal), "overdue": overdue})
    if overdue is not None:
        params["now"] = now
    return stmt, params


async def read_case(*, session: AsyncSession, principal: Principal, feedback_id: str, action: str = "read") -> Feedback:
    """A case, its reading audited (who read it and when)."""
    case = await get_feedback(session=session, principal=principal, feedback_id=feedback_id)
    audit(session, principal=principal, entity="feedback", entity_id=case.id, action=action)
    return case


async def history(*, session: AsyncSession, settings: FeedbackSettings, principal: Principal,
                  feedback_id: str) -> list[HistoryEntry]:
    case = await read_case(session=session, principal=principal, feedback_id=feedback_id, action="history_read")
    rows = (await session.execute(select(FeedbackHistory).where(FeedbackHistory.feedback_id == case.id)
                                  .order_by(FeedbackHistory.id))).scalars()  # type: ignore[arg-type]
    return [HistoryEntry(status=r.status, previous_status=r.previous_status,  # type: ignore[arg-type]
                         note=_opened(settings, r.note_sealed), actor=r.actor, at=r.at) for r in rows]


async def audit_trail(*, session: AsyncSession, principal: Principal, feedback_id: str) -> list[AuditEntry]:
    """Who read and who changed a case (field names only, never values)."""
    case = await get_feedback(session=session, principal=principal, feedback_id=feedback_id)
    return list((await session.execute(select(AuditEntry).where(AuditEntry.entity == "feedback",
                                                                AuditEntry.entity_id == case.id)
                                       .order_by(AuditEntry.id))).scalars())  # type: ignore[arg-type]


async def counts(*, session: AsyncSession, principal: Principal, by: str, governorate: str | None) -> Counts:
    """Cases the caller may see, counted by category, status or channel (a sensitive case is never counted for
    a role that may not see it)."""
    column = getattr(Feedback, by)
    stmt = select(column, func.count()).where(visible(principal, ORDINARY_COUNTERS))
    scope = principal.scope_filter()
    if scope is not None:
        stmt = stmt.where(Feedback.governorate_pcode.in_(scope))  # type: ignore[union-attr]
    if governorate:
        stmt = stmt.where(Feedback.governorate_pcode == governorate)
    rows = (await session.execute(stmt.group_by(column).order_by(column))).all()
    items = [CountItem(key=key, count=int(n)) for key, n in rows]
    return Counts(by=by, items=items, total=sum(i.count for i in items))


# -- transitions ------------------------------------------------------------------------------------
async def change_status(*, session: AsyncSession, outbox: Outbox, principal: Principal, settings: FeedbackSettings,
                        now: datetime, feedback_id: str, data: StatusChange) -> Feedback:
    """Move a case along its lifecycle (``TRANSITIONS``; anything else 409), with a dated history entry.

    The first move out of ``received`` acknowledges it; ``resolved`` dates the resolution (reopening clears
    it); ``closed`` needs a response to the complainant first (409 ``no-response``) and takes their
    satisfaction. Whether the service levels were met travels in the event."""
    case = await get_feedback(session=session, principal=principal, feedback_id=feedback_id)
    previous = case.status
    if data.status not in TRANSITIONS[previous]:
        raise Conflict(f"A {previous} case cannot become {data.status}", slug="invalid-transition",
                       current_status=previous)
    if data.status == "closed" and case.response_sealed is None:
        raise Conflict("Record the response to the complainant before closing the case", slug="no-response")
    if case.acknowledged_at is None:
        case.acknowledged_at = now
    if data.status == "referred":
        assert data.referred_to is not None
        case.referred_to_sealed, case.referral_consent = seal(settings, data.referred_to), data.referral_consent
        case.referred_at = now
    elif data.status == "resolved":
        case.resolved_at = now
    elif data.status == "in_progress" and previous == "resolved":
        case.resolved_at = None  # reopened: resolved again later, or overdue
    elif data.status == "closed":
        case.closed_at, case.satisfaction = now, data.satisfaction
    case.status, case.updated_at = data.status, now
    audit(session, principal=principal, entity="feedback", entity_id=case.id, action=f"status:{data.status}",
          fields=data.model_fields_set)
    await session.flush()  # the version-checked UPDATE: a raced transition fails here, before any event
    session.add(FeedbackHistory(feedback_id=case.id, status=data.status, previous_status=previous, actor=principal.sub,
                                note_sealed=None if data.note is None else seal(settings, data.note), at=now))
    outbox.emit(session, FeedbackStatusChanged(**_snapshot(case), previous_status=previous, changed_on=now.date()),
                subject_id=case.id)
    return case


async def respond(*, session: AsyncSession, principal: Principal, settings: FeedbackSettings, now: datetime,
                  feedback_id: str, data: ResponseCreate) -> Feedback:
    """Record (or correct) the response to the complainant, shown on the public status page."""
    case = await get_feedback(session=session, principal=principal, feedback_id=feedback_id)
    if case.status == "closed":
        raise Conflict("The case is closed", slug="invalid-transition", current_status=case.status)
    case.response_sealed, case.responded_at, case.updated_at = seal(settings, data.response), now, now
    touch(case)
    audit(session, principal=principal, entity="feedback", entity_id=case.id, action="responded", fields=["response"])
    await session.flush()
    return case


async def reset_pin(*, session: AsyncSession, principal: Principal, settings: FeedbackSettings, now: datetime,
                    feedback_id: str) -> tuple[Feedback, str]:
    """A new PIN for a case whose complainant lost theirs (the old one stops working)."""
    case = await get_feedback(session=session, principal=principal, feedback_id=feedback_id)
    pin = new_pin()
    case.pin_hash, case.pin_key_chain = _pin_hash(settings, case.reference, pin), current_chain(settings)
    case.updated_at = now
    touch(case)
    audit(session, principal=principal, entity="feedback", entity_id=case.id, action="pin_reset", fields=["pin"])
    await session.flush()
    return case, pin


# -- the public status page -------------------------------------------------------------------------
async def _throttle_rows(session: AsyncSession, keys: list[str], now: datetime) -> dict[str, PinThrottle]:
    """The throttle rows of ``keys``, created when missing and locked for this transaction (PostgreSQL: FOR
    UPDATE in key order; SQLite: BEGIN IMMEDIATE already serialises writers)."""
    postgres = session.bind is not None and session.bind.dialect.name == "postgresql"
    insert = pg_insert if postgres else sqlite_insert
    await session.execute(insert(PinThrottle).values([  # type: ignore[arg-type]
        {"key": k, "failures": 0, "window_started_at": now} for k in keys]).on_conflict_do_nothing(
        index_elements=["key"]))
    stmt = (select(PinThrottle).where(PinThrottle.key.in_(sorted(keys)))  # type: ignore[attr-defined]
            .order_by(PinThrottle.key).execution_options(populate_existing=True))
    if postgres:
        stmt = stmt.with_for_update()
    return {row.key: row for row in (await session.execute(stmt)).scalars()}


def _as_aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _fail(row: PinThrottle, limit: int, settings: FeedbackSettings, now: datetime) -> None:
    if now - _as_aware(row.window_started_at) > timedelta(seconds=settings.feedback_pin_window_seconds):
        row.failures, row.window_started_at = 0, now
    row.failures += 1
    if row.failures >= limit:
        row.locked_until = now + timedelta(seconds=settings.feedback_pin_lockout_seconds)
        row.failures, row.window_started_at = 0, now


async def public_status(*, sessionmaker: async_sessionmaker[AsyncSession], settings: FeedbackSettings,
                        now: datetime, reference: str, pin: str | None, client: str) -> PublicStatus:
    """The status and public response of a case, for whoever holds its reference and PIN.

    A wrong PIN (or an unknown reference) is 404 and counts against the reference and the client address, in
    the database (so across replicas and restarts), in its own transaction; too many lock them out: 429 with
    ``Retry-After`` until the lock-out ends, even with the right PIN. The PIN is compared in constant time."""
    reference = reference.upper()
    ref_key, client_key = f"ref:{reference[:70]}", f"client:{client[:70]}"
    async with sessionmaker() as session:
        async with session.begin():
            rows = await _throttle_rows(session, [ref_key, client_key], now)
            locked = [r.locked_until for r in rows.values() if r.locked_until and _as_aware(r.locked_until) > now]
            if not locked:
                case = (await session.execute(select(Feedback).where(Feedback.reference == reference))
                        ).scalars().first()
                expected = case.pin_hash if case else "0" * 64
                given = _pin_hash(settings, reference, pin or "", case.pin_key_chain if case else None)
                if case is not None and pin is not None and hmac.compare_digest(given, expected):
                    rows[ref_key].failures = 0  # a right PIN clears the reference's count, not the address's
                    return PublicStatus(reference=case.reference, status=case.status,  # type: ignore[arg-type]
                                        response=_opened(settings, case.response_sealed), updated_at=case.updated_at)
                _fail(rows[ref_key], settings.feedback_pin_failures_per_reference, settings, now)
                _fail(rows[client_key], settings.feedback_pin_failures_per_client, settings, now)
    if locked:
        wait = max(math.ceil((_as_aware(until) - now).total_seconds()) for until in locked)
        raise TooManyRequests("Too many wrong PINs; try again later", headers={"Retry-After": str(max(wait, 1))},
                              retry_after=max(wait, 1))
    raise NotFound("No case with this reference and PIN")


# -- resource centres -------------------------------------------------------------------------------
def _centre_snapshot(centre: ResourceCentre) -> dict[str, Any]:
    return dict(resource_centre_id=centre.id, revision=centre.version, community_id=centre.community_id,
                district_pcode=centre.district_pcode, governorate_pcode=centre.governorate_pcode, active=centre.active)


async def create_resource_centre(*, session: AsyncSession, outbox: Outbox, principal: Principal,
                                 peers: Beneficiaries, data: ResourceCentreCreate) -> ResourceCentre:
    community = await peers.community(data.community_id)
    centre = ResourceCentre(**data.model_dump(), district_pcode=community.district_pcode,
                            governorate_pcode=community.governorate_pcode)
    session.add(centre)
    audit(session, principal=principal, entity="resource_centre", entity_id=centre.id, action="created",
          fields=data.model_fields_set)
    await session.flush()
    outbox.emit(session, ResourceCentreCreated(**_centre_snapshot(centre)), subject_id=centre.id)
    return centre


async def get_resource_centre(*, session: AsyncSession, principal: Principal, centre_id: str) -> ResourceCentre:
    return await get_in_scope(session, ResourceCentre, centre_id, principal, label="resource centre")


async def read_resource_centre(*, reads: Reads, principal: Principal, centre_id: str) -> Any:
    """``get_resource_centre`` for a request that only shows it: a read-only row, no session."""
    return await read_in_scope(reads, ResourceCentre, centre_id, principal, label="resource centre")


_CENTRE = ResourceCentre.__table__.c  # type: ignore[attr-defined]
_CENTRE_FILTERS: Conditions = {"community_id": _CENTRE.community_id, "governorate": _CENTRE.governorate_pcode,
                               "active": lambda active: _CENTRE.active.is_(active)}


def list_resource_centres_query(*, principal: Principal, community_id: str | None, governorate: str | None,
                                active: bool | None) -> tuple[Select[Any], dict[str, Any]]:
    """Centres in the caller's governorates: the statement (built once per combination of filters) and its
    values."""
    return list_in_scope(ResourceCentre, principal, _CENTRE_FILTERS,
                         bound={"community_id": community_id, "governorate": governorate}, shape={"active": active})


async def update_resource_centre(*, session: AsyncSession, outbox: Outbox, principal: Principal,
                                 centre: ResourceCentre, data: ResourceCentreUpdate) -> ResourceCentre:
    changes = data.model_dump(exclude_unset=True)
    for name in ("name", "active"):
        if name in changes and changes[name] is None:
            raise _field_error(name, f"{name} cannot be null")
    for name, value in changes.items():
        setattr(centre, name, value)
    touch(centre)
    centre.updated_at = utcnow()
    audit(session, principal=principal, entity="resource_centre", entity_id=centre.id, action="updated",
          fields=changes)
    await session.flush()
    outbox.emit(session, ResourceCentreUpdated(**_centre_snapshot(centre)), subject_id=centre.id)
    return centre


# -- community activities ---------------------------------------------------------------------------
async def record_activity(*, session: AsyncSession, outbox: Outbox, principal: Principal, peers: Beneficiaries,
                          data: CommunityActivityCreate) -> CommunityActivity:
    """A community activity in a community the caller may see (and at one of its resource centres, if any)."""
    if data.resource_centre_id:
        await _centre_for_field(session, principal, data.resource_centre_id)
    community = await peers.community(data.community_id)
    p = data.participants
    activity = CommunityActivity(
        kind=data.kind, community_id=community.id, district_pcode=community.district_pcode,
        governorate_pcode=community.governorate_pcode, resource_centre_id=data.resource_centre_id,
        held_on=data.held_on, facilitators=json.dumps(data.facilitators, ensure_ascii=False),
        participants_total=p.total, participants_female=p.female, participants_male=p.male, participants_idp=p.idp,
        participants_returnee=p.returnee, participants_host_community=p.host_community,
        groups_represented=json.dumps(data.groups_represented), outcome=data.outcome,
        follow_up_actions=json.dumps([a.model_dump(mode="json") for a in data.follow_up_actions],
                                     ensure_ascii=False))
    session.add(activity)
    audit(session, principal=principal, entity="community_activity", entity_id=activity.id, action="recorded",
          fields=data.model_fields_set)
    await session.flush()
    outbox.emit(session, CommunityActivityRecorded(
        activity_id=activity.id, kind=data.kind, community_id=activity.community_id,
        district_pcode=activity.district_pcode, governorate_pcode=activity.governorate_pcode,
        resource_centre_id=activity.resource_centre_id, held_on=activity.held_on, participants_total=p.total,
        participants_female=p.female, participants_male=p.male, participants_idp=p.idp,
        participants_returnee=p.returnee, participants_host_community=p.host_community), subject_id=activity.id)
    return activity


def activity_public(a: CommunityActivity) -> CommunityActivityPublic:
    return CommunityActivityPublic(
        id=a.id, kind=a.kind, community_id=a.community_id, district_pcode=a.district_pcode,  # type: ignore[arg-type]
        governorate_pcode=a.governorate_pcode, resource_centre_id=a.resource_centre_id, held_on=a.held_on,
        facilitators=json.loads(a.facilitators),
        participants=ParticipantsPublic(total=a.participants_total, female=a.participants_female,
                                        male=a.participants_male, idp=a.participants_idp,
                                        returnee=a.participants_returnee,
                                        host_community=a.participants_host_community),
        groups_represented=json.loads(a.groups_represented), outcome=a.outcome,
        follow_up_actions=[FollowUpActionPublic(**x) for x in json.loads(a.follow_up_actions)],
        created_at=a.created_at)


async def read_activity(*, reads: Reads, principal: Principal, activity_id: str) -> Any:
    """A community activity in the caller's governorates, else NotFound: a read-only row, no session
    (``activity_public`` renders it)."""
    return await read_in_scope(reads, CommunityActivity, activity_id, principal, label="community activity")


_ACTIVITY = CommunityActivity.__table__.c  # type: ignore[attr-defined]
_ACTIVITY_FILTERS: Conditions = {
    "kind": _ACTIVITY.kind, "community_id": _ACTIVITY.community_id, "governorate": _ACTIVITY.governorate_pcode,
    "resource_centre_id": _ACTIVITY.resource_centre_id, "held_from": (_ACTIVITY.held_on, operator.ge),
    "held_to": (_ACTIVITY.held_on, operator.le)}


def list_activities_query(*, principal: Principal, kind: str | None, community_id: str | None,
                          governorate: str | None, resource_centre_id: str | None, held_from: Any,
                          held_to: Any) -> tuple[Select[Any], dict[str, Any]]:
    """Activities in the caller's governorates: the statement (built once per combination of filters) and its
    values."""
    return list_in_scope(CommunityActivity, principal, _ACTIVITY_FILTERS, bound=dict(
        kind=kind, community_id=community_id, governorate=governorate, resource_centre_id=resource_centre_id,
        held_from=held_from, held_to=held_to))



ERASED = "[erased]"
RETENTION = Principal(sub="retention", roles=frozenset({"admin"}), governorates=frozenset({"*"}))


async def erase_expired(session: AsyncSession, settings: Any) -> int:
    """Housekeeping: the personal data retention (``CRP_PERSONAL_DATA_RETENTION_DAYS``, as in beneficiaries and
    grants) for cases resolved or closed and unchanged that long: the description becomes ``[erased]``; the
    contact, the response, the referral's recipient and the internal notes are removed. Category, channel, place,
    dates and statuses stay (the figures rest on them). Returns how many cases."""
    days = getattr(settings, "personal_data_retention_days", None)
    if not days:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    erased = seal(settings, ERASED)
    cases = list((await session.execute(select(Feedback).where(
        Feedback.status.in_(("resolved", "closed")), Feedback.updated_at < cutoff,  # type: ignore[attr-defined]
    ).order_by(Feedback.updated_at).limit(500).with_for_update(skip_locked=True))).scalars().all())
    for case in cases:
        if unseal(settings, case.description_sealed) == ERASED and case.contact_sealed is None \
                and case.response_sealed is None and case.referred_to_sealed is None:
            continue  # already erased (sealing is randomised: a query cannot tell)
        case.description_sealed, case.contact_sealed = erased, None
        case.response_sealed = case.referred_to_sealed = None
        case.updated_at = utcnow()
        session.add(case)
        history = FeedbackHistory.__table__  # type: ignore[attr-defined]
        await session.execute(history.update().where(history.c.feedback_id == case.id).values(note_sealed=None))
        audit(session, principal=RETENTION, entity="feedback", entity_id=case.id, action="erased_retention",
              fields={"description", "contact", "response", "referred_to", "notes"})
    await session.flush()
    return len(cases)
