"""Domain logic of the grants service. Functions add and flush; the caller's session commits.

Every transition is a version-checked UPDATE of the grant (``shared.concurrency``): raced twice, it happens
once. The budget cap is ``GrantCall.committed_amount`` and the disbursement cap ``Grant.disbursed_amount``,
both changed in the transaction that checks them, so the check and the write are one atomic step.
"""

from __future__ import annotations

import operator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.grants.models import Disbursement, Grant, GrantCall, GrantScore, MonitoringVisit, SupportSession
from services.grants.schemas import (
    Approval,
    Cancellation,
    DisbursementCreate,
    GrantCallCreate,
    GrantCreate,
    MonitoringVisitCreate,
    Rejection,
    Reversal,
    ScoreCreate,
    ShortlistItem,
    SupportSessionCreate,
)
from shared.audit import audit
from shared.auth import Principal
from shared.db import Reads, advisory_xact_lock, utcnow
from shared.errors import Conflict, NotFound, Unprocessable
from shared.events.grants import (
    DisbursementMade,
    DisbursementReversed,
    GrantApproved,
    GrantCancelled,
    GrantRejected,
    GrantSubmitted,
    MonitoringRecorded,
)
from shared.outbox import Outbox
from shared.peers import Beneficiaries, BeneficiaryRef
from shared.scope import (
    Conditions,
    get_in_scope,
    list_in_scope,
    read_by_id,
    read_in_scope,
    select_in_scope,
)

# Statuses in which an application counts as the person's one application to its call.
ACTIVE = ("submitted", "approved", "disbursing", "fully_disbursed")
FUNDED = ("approved", "disbursing", "fully_disbursed")


def _field_error(field: str, msg: str) -> Unprocessable:
    return Unprocessable(msg, errors=[{"loc": ["body", field], "msg": msg}])


def _today() -> date:
    return utcnow().date()


# -- calls ------------------------------------------------------------------------------------------
async def create_call(*, session: AsyncSession, principal: Principal, data: GrantCallCreate) -> GrantCall:
    call = GrantCall(**data.model_dump(exclude={"eligibility", "criteria"}),
                     eligibility=data.eligibility.model_dump() if data.eligibility else None,
                     criteria=[c.model_dump() for c in data.criteria] if data.criteria else None)
    session.add(call)
    audit(session, principal=principal, entity="grant_call", entity_id=call.id, action="created",
          fields=data.model_fields_set)
    await session.flush()
    return call


async def get_call(*, session: AsyncSession, call_id: str) -> GrantCall:
    """Calls are programme-wide (their eligibility may name governorates): every reader sees them."""
    call = await session.get(GrantCall, call_id)
    if call is None:
        raise NotFound(f"No grant call {call_id}")
    return call


async def read_call(*, reads: Reads, call_id: str) -> Any:
    """``get_call`` for a request that only shows it: a read-only row, no session."""
    call = await read_by_id(reads, GrantCall, call_id)
    if call is None:
        raise NotFound(f"No grant call {call_id}")
    return call


_CALL = GrantCall.__table__.c  # type: ignore[attr-defined]
_CALL_FILTERS: Conditions = {"sector": _CALL.sector,
                             "open_on": lambda v: and_(_CALL.opens_on <= v, _CALL.closes_on >= v)}


def list_calls_query(*, sector: str | None, open_on: date | None) -> tuple[Select[Any], dict[str, Any]]:
    """Calls are programme-wide: the statement (built once per combination of filters) and its values."""
    return list_in_scope(GrantCall, None, _CALL_FILTERS, bound={"sector": sector, "open_on": open_on})


# -- applications -----------------------------------------------------------------------------------
def _facts(grant: Grant) -> dict[str, Any]:
    """The pseudonymous facts every grant event carries."""
    return dict(grant_id=grant.id, revision=grant.version, call_id=grant.call_id, beneficiary_id=grant.beneficiary_id,
                sector=grant.sector, currency=grant.currency, community_id=grant.community_id,
                district_pcode=grant.district_pcode, governorate_pcode=grant.governorate_pcode)


def eligibility_failures(call: GrantCall, person: BeneficiaryRef, on: date) -> list[str]:
    """Each rule of the call's eligibility that ``person`` fails, explained."""
    rules = call.eligibility or {}
    failures = []
    statuses = rules.get("displacement_statuses")
    if statuses and person.displacement_status not in statuses:
        failures.append(f"displacement status {person.displacement_status!r} is not among {', '.join(statuses)}")
    age = person.age_on(on)
    if rules.get("min_age") is not None and age < rules["min_age"]:
        failures.append(f"aged {age}, under the minimum age {rules['min_age']}")
    if rules.get("max_age") is not None and age > rules["max_age"]:
        failures.append(f"aged {age}, over the maximum age {rules['max_age']}")
    governorates = rules.get("governorates")
    if governorates and person.governorate_pcode not in governorates:
        failures.append(f"lives in {person.governorate_pcode}, outside the call's governorates "
                        f"{', '.join(governorates)}")
    if rules.get("disability_required") and not person.has_disability:
        failures.append("the call is for persons with a disability")
    return failures


async def submit(*, session: AsyncSession, outbox: Outbox, principal: Principal, peers: Beneficiaries,
                 data: GrantCreate) -> Grant:
    """Apply for a grant for a person (looked up with the caller's token: unknown or out of scope is 422)."""
    person = await peers.get(data.beneficiary_id)  # before touching the database: 503 stores nothing
    if not person.consent_given:
        withdrawn = person.consent_withdrawn_on.isoformat() if person.consent_withdrawn_on else "earlier"
        raise Conflict(f"The person withdrew their consent on {withdrawn}: no new assistance can be recorded "
                       "for them", slug="consent-withdrawn")
    # Every record standing for the person (merges), asked before the database is touched.
    records = await peers.records_of(person) if data.call_id is not None else set()
    today = _today()
    call = None
    if data.call_id is not None:
        call = await session.get(GrantCall, data.call_id)
        if call is None:
            raise _field_error("call_id", f"unknown grant call {data.call_id!r}")
        if data.currency != call.currency:
            raise _field_error("currency", f"the call is in {call.currency}")
        if not call.opens_on <= today <= call.closes_on:
            raise Conflict(f"The call is open from {call.opens_on} to {call.closes_on}", slug="call-not-open")
        failures = eligibility_failures(call, person, today)
        if failures:
            raise Unprocessable("The person is not eligible for this call: " + "; ".join(failures),
                                slug="not-eligible",
                                errors=[{"loc": ["body", "beneficiary_id"], "msg": f} for f in failures])
        # One active application per person per call, merged records counting as one person: an application
        # made under a record since merged into this person's is theirs.
        await advisory_xact_lock(session, f"grant-application:{call.id}:{person.id}")
        other = (await session.execute(select(Grant.id).where(
            Grant.call_id == call.id, Grant.status.in_(ACTIVE),  # type: ignore[attr-defined]
            Grant.beneficiary_id.in_(records)))).scalars().first()  # type: ignore[attr-defined]
        if other is not None:
            raise Conflict("This person already has an active application to this call", slug="already-applied",
                           grant_id=other)
    grant = Grant(call_id=data.call_id, beneficiary_id=person.id, requested_beneficiary_id=data.beneficiary_id,
                  business_name=data.business_name, sector=data.sector, currency=data.currency,
                  amount_requested=data.amount_requested, status="submitted", has_disability=person.has_disability,
                  community_id=person.community_id, district_pcode=person.district_pcode,
                  governorate_pcode=person.governorate_pcode, submitted_on=today)
    session.add(grant)
    await session.flush()
    audit(session, principal=principal, entity="grant", entity_id=grant.id, action="submitted",
          fields=data.model_fields_set)
    outbox.emit(session, GrantSubmitted(**_facts(grant), amount_requested=grant.amount_requested,
                                        submitted_on=today), subject_id=grant.id)
    await session.flush()
    return grant


async def get_grant(*, session: AsyncSession, principal: Principal, grant_id: str) -> Grant:
    """A grant whose person lives in the caller's governorates, else NotFound."""
    return await get_in_scope(session, Grant, grant_id, principal, label="grant")


async def read_grant(*, reads: Reads, principal: Principal, grant_id: str) -> Any:
    """``get_grant`` for a request that only shows it: a read-only row, no session."""
    return await read_in_scope(reads, Grant, grant_id, principal, label="grant")


_GRANT = Grant.__table__.c  # type: ignore[attr-defined]
_GRANT_FILTERS: Conditions = {
    "call_id": _GRANT.call_id, "status": _GRANT.status, "community_id": _GRANT.community_id,
    "governorate": _GRANT.governorate_pcode, "beneficiary_id": _GRANT.beneficiary_id,
    "submitted_from": (_GRANT.submitted_on, operator.ge), "submitted_to": (_GRANT.submitted_on, operator.le)}


def list_grants_query(*, principal: Principal, call_id: str | None, status: str | None, community_id: str | None,
                      governorate: str | None, beneficiary_id: str | None, submitted_from: date | None,
                      submitted_to: date | None) -> tuple[Select[Any], dict[str, Any]]:
    """Grants in the caller's governorates: the statement (built once per combination of filters) and its
    values."""
    return list_in_scope(Grant, principal, _GRANT_FILTERS, bound=dict(
        call_id=call_id, status=status, community_id=community_id, governorate=governorate,
        beneficiary_id=beneficiary_id, submitted_from=submitted_from, submitted_to=submitted_to))


# -- scoring ----------------------------------------------------------------------------------------
async def score(*, session: AsyncSession, principal: Principal, grant_id: str, data: ScoreCreate) -> GrantScore:
    """The caller (a named scorer) marks an application against its call's criteria; again replaces."""
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    if grant.status != "submitted":
        raise Conflict(f"A {grant.status} application can no longer be scored")
    call = await session.get(GrantCall, grant.call_id) if grant.call_id else None
    if call is None or not call.criteria:
        raise Conflict("The application's call has no scoring criteria", slug="no-criteria")
    criteria = {c["name"]: c for c in call.criteria}
    errors = [{"loc": ["body", "marks", name], "msg": "not a criterion of the call"}
              for name in data.marks if name not in criteria]
    errors += [{"loc": ["body", "marks", name], "msg": "missing"} for name in criteria if name not in data.marks]
    errors += [{"loc": ["body", "marks", name], "msg": f"above the maximum {criteria[name]['max_score']}"}
               for name, mark in data.marks.items() if name in criteria and mark > criteria[name]["max_score"]]
    if errors:
        raise Unprocessable("The marks do not match the call's criteria", errors=errors)
    weights = sum(c["weight"] for c in criteria.values())
    total = round(sum(c["weight"] * data.marks[n] / c["max_score"] for n, c in criteria.items()) * 100 / weights, 2)
    existing = (await session.execute(select(GrantScore).where(
        GrantScore.grant_id == grant.id, GrantScore.scorer == principal.sub))).scalars().first()
    if existing is None:
        existing = GrantScore(grant_id=grant.id, scorer=principal.sub, marks=dict(data.marks), total=total)
        session.add(existing)
    else:
        existing.marks, existing.total, existing.created_at = dict(data.marks), total, utcnow()
    await session.flush()
    totals = (await session.execute(select(GrantScore.total).where(GrantScore.grant_id == grant.id))).scalars().all()
    grant.score = round(sum(totals) / len(totals), 2)
    grant.updated_at = utcnow()
    await session.flush()  # version-checked: a score raced with a decision loses (409)
    audit(session, principal=principal, entity="grant", entity_id=grant.id, action="scored", fields={"score"})
    return existing


async def shortlist(*, session: AsyncSession, principal: Principal, call_id: str,
                    limit: int) -> list[ShortlistItem]:
    """The call's submitted applications ranked: score (highest first; unscored last), then disability
    priority when the call gives it, then the earliest submitted."""
    call = await get_call(session=session, call_id=call_id)
    priority = bool((call.eligibility or {}).get("disability_priority"))
    grants = (await session.execute(select_in_scope(Grant, principal).where(
        Grant.call_id == call.id, Grant.status == "submitted"))).scalars().all()
    counts = dict((await session.execute(select(GrantScore.grant_id, func.count()).where(
        GrantScore.grant_id.in_([g.id for g in grants])).group_by(GrantScore.grant_id))).all())  # type: ignore[attr-defined]
    ranked = sorted(grants, key=lambda g: (g.score is None, -(g.score or 0), not (priority and g.has_disability),
                                           g.created_at, g.id))
    return [ShortlistItem(rank=i, grant_id=g.id, beneficiary_id=g.beneficiary_id, score=g.score,
                          scorers=counts.get(g.id, 0), priority=priority and g.has_disability,
                          amount_requested=g.amount_requested)
            for i, g in enumerate(ranked[:limit], start=1)]


# -- decisions --------------------------------------------------------------------------------------
async def approve(*, session: AsyncSession, outbox: Outbox, principal: Principal, grant_id: str,
                  data: Approval) -> Grant:
    """Approve a submitted application within its call's remaining budget (409 when over)."""
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    if grant.status != "submitted":
        raise Conflict(f"A {grant.status} grant cannot be approved", slug="invalid-transition")
    if data.amount_approved > grant.amount_requested:
        raise _field_error("amount_approved", f"above the amount requested ({grant.amount_requested})")
    if grant.call_id:
        call = await get_call(session=session, call_id=grant.call_id)
        remaining = call.budget - call.committed_amount
        if data.amount_approved > remaining:
            raise Conflict(f"Only {remaining} {call.currency} of the call's budget remains", slug="over-budget",
                           remaining=str(remaining))
        call.committed_amount = call.committed_amount + data.amount_approved  # the call's version-checked UPDATE
        call.updated_at = utcnow()
    today = _today()
    grant.status, grant.amount_approved, grant.decided_on, grant.updated_at = "approved", data.amount_approved, today, \
        utcnow()
    await session.flush()  # the grant's and the call's UPDATEs: a concurrent approval loses here (409)
    audit(session, principal=principal, entity="grant", entity_id=grant.id, action="approved",
          fields={"status", "amount_approved"})
    outbox.emit(session, GrantApproved(**_facts(grant), amount_approved=data.amount_approved, approved_on=today),
                subject_id=grant.id)
    await session.flush()
    return grant


async def reject(*, session: AsyncSession, outbox: Outbox, principal: Principal, grant_id: str,
                 data: Rejection) -> Grant:
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    if grant.status != "submitted":
        raise Conflict(f"A {grant.status} grant cannot be rejected", slug="invalid-transition")
    today = _today()
    grant.status, grant.decision_reason, grant.decided_on, grant.updated_at = "rejected", data.reason, today, utcnow()
    await session.flush()
    audit(session, principal=principal, entity="grant", entity_id=grant.id, action="rejected",
          fields={"status", "decision_reason"})
    outbox.emit(session, GrantRejected(**_facts(grant), rejected_on=today), subject_id=grant.id)
    await session.flush()
    return grant


async def end(*, session: AsyncSession, outbox: Outbox, principal: Principal, grant_id: str, data: Cancellation,
              by: str) -> Grant:
    """Cancel (the programme) or withdraw (the applicant) a submitted or approved grant; an approved amount
    returns to the call's budget. Once money has been disbursed it is 409 (reverse the disbursements first)."""
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    verb = "cancelled" if by == "programme" else "withdrawn"
    if grant.status not in ("submitted", "approved"):
        raise Conflict(f"A {grant.status} grant cannot be {verb}", slug="invalid-transition")
    if grant.status == "approved" and grant.call_id and grant.amount_approved is not None:
        call = await get_call(session=session, call_id=grant.call_id)
        call.committed_amount = call.committed_amount - grant.amount_approved
        call.updated_at = utcnow()
    today = _today()
    grant.status, grant.decision_reason, grant.decided_on, grant.updated_at = verb, data.reason, today, utcnow()
    await session.flush()
    audit(session, principal=principal, entity="grant", entity_id=grant.id, action=verb,
          fields={"status", *({"decision_reason"} if data.reason else set())})
    outbox.emit(session, GrantCancelled(**_facts(grant), by=by, cancelled_on=today),  # type: ignore[arg-type]
                subject_id=grant.id)
    await session.flush()
    return grant


# -- disbursements ----------------------------------------------------------------------------------
async def _live_disbursements(session: AsyncSession, grant_id: str) -> list[Disbursement]:
    return list((await session.execute(select(Disbursement).where(
        Disbursement.grant_id == grant_id, Disbursement.reversed_on.is_(None))  # type: ignore[union-attr]
        .order_by(Disbursement.tranche))).scalars())


async def _check_monitoring(session: AsyncSession, grant: Grant, since: date) -> None:
    """The latest visit since the previous tranche must show the business operating."""
    visit = (await session.execute(select(MonitoringVisit).where(
        MonitoringVisit.grant_id == grant.id, MonitoringVisit.visited_on >= since)
        .order_by(MonitoringVisit.visited_on.desc(), MonitoringVisit.created_at.desc()))).scalars().first()  # type: ignore[attr-defined]
    if visit is None:
        raise Conflict(f"The call needs a monitoring visit since the previous tranche ({since}) showing the "
                       "business operating before another tranche", slug="monitoring-required")
    if not visit.business_operating:
        raise Conflict(f"The latest monitoring visit ({visit.visited_on}) found the business not operating",
                       slug="monitoring-required")


async def disburse(*, session: AsyncSession, outbox: Outbox, principal: Principal, peers: Beneficiaries,
                   grant_id: str, data: DisbursementCreate) -> Disbursement:
    """Pay a tranche: never above the approved amount in total; a later tranche waits for monitoring when
    the call requires it; none for a person whose consent is withdrawn."""
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    if grant.status not in ("approved", "disbursing"):
        raise Conflict(f"A {grant.status} grant cannot be disbursed", slug="invalid-transition")
    assert grant.amount_approved is not None
    if grant.disbursed_amount + data.amount > grant.amount_approved:
        raise Conflict(f"Only {grant.amount_approved - grant.disbursed_amount} {grant.currency} of the approved "
                       f"{grant.amount_approved} remain to be disbursed", slug="over-disbursement")
    if grant.decided_on and data.disbursed_on < grant.decided_on:
        raise _field_error("disbursed_on", "before the grant was approved")
    live = await _live_disbursements(session, grant.id)
    tranche = len(live) + 1
    call = await session.get(GrantCall, grant.call_id) if grant.call_id else None
    if call is not None:
        if tranche > call.tranches:
            raise Conflict(f"The call pays at most {call.tranches} tranche(s)", slug="too-many-tranches")
        if call.monitoring_required and live:
            await _check_monitoring(session, grant, max(d.disbursed_on for d in live))
    person = await peers.get(grant.beneficiary_id)
    if not person.consent_given:
        raise Conflict("The person withdrew their consent: no new assistance can be recorded for them",
                       slug="consent-withdrawn")
    disbursement = Disbursement(grant_id=grant.id, tranche=tranche, amount=data.amount,
                                disbursed_on=data.disbursed_on)
    session.add(disbursement)
    grant.disbursed_amount = grant.disbursed_amount + data.amount
    grant.status = "fully_disbursed" if grant.disbursed_amount == grant.amount_approved else "disbursing"
    grant.updated_at = utcnow()
    await session.flush()  # the grant's version-checked UPDATE: of two racing disbursements one loses (409)
    audit(session, principal=principal, entity="disbursement", entity_id=disbursement.id, action="made",
          fields=data.model_fields_set)
    audit(session, principal=principal, entity="grant", entity_id=grant.id, action="disbursed",
          fields={"disbursed_amount", "status"})
    outbox.emit(session, DisbursementMade(**_facts(grant), disbursement_id=disbursement.id, tranche=tranche,
                                          amount=data.amount, disbursed_on=data.disbursed_on),
                subject_id=grant.id)
    await session.flush()
    return disbursement


async def reverse(*, session: AsyncSession, outbox: Outbox, principal: Principal, grant_id: str,
                  disbursement_id: str, data: Reversal) -> Disbursement:
    """Undo a disbursement (with a reason): the grant's totals and status, and every figure, follow."""
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    disbursement = await session.get(Disbursement, disbursement_id)
    if disbursement is None or disbursement.grant_id != grant.id:
        raise NotFound(f"No disbursement {disbursement_id}")
    if disbursement.reversed_on is not None:
        raise Conflict(f"The disbursement was already reversed on {disbursement.reversed_on}",
                       slug="invalid-transition")
    if data.reversed_on < disbursement.disbursed_on:
        raise _field_error("reversed_on", "before the disbursement")
    disbursement.reversed_on, disbursement.reversal_reason = data.reversed_on, data.reason
    grant.disbursed_amount = grant.disbursed_amount - disbursement.amount
    grant.status = "approved" if grant.disbursed_amount == 0 else "disbursing"
    grant.updated_at = utcnow()
    await session.flush()  # both rows version-checked: a reversal raced twice happens once
    audit(session, principal=principal, entity="disbursement", entity_id=disbursement.id, action="reversed",
          fields=data.model_fields_set)
    audit(session, principal=principal, entity="grant", entity_id=grant.id, action="disbursement_reversed",
          fields={"disbursed_amount", "status"})
    outbox.emit(session, DisbursementReversed(**_facts(grant), disbursement_id=disbursement.id,
                                              tranche=disbursement.tranche, amount=disbursement.amount,
                                              disbursed_on=disbursement.disbursed_on, reversed_on=data.reversed_on),
                subject_id=grant.id)
    await session.flush()
    return disbursement


async def list_disbursements(*, session: AsyncSession, principal: Principal, grant_id: str) -> list[Disbursement]:
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    return list((await session.execute(select(Disbursement).where(Disbursement.grant_id == grant.id)
                                       .order_by(Disbursement.created_at))).scalars())


# -- technical support and monitoring ---------------------------------------------------------------
async def _funded(session: AsyncSession, principal: Principal, grant_id: str, what: str) -> Grant:
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    if grant.status not in FUNDED:
        raise Conflict(f"A {grant.status} grant has no business to {what} yet", slug="invalid-transition")
    return grant


async def add_support_session(*, session: AsyncSession, principal: Principal, grant_id: str,
                              data: SupportSessionCreate) -> SupportSession:
    grant = await _funded(session, principal, grant_id, "support")
    row = SupportSession(grant_id=grant.id, **data.model_dump())
    session.add(row)
    audit(session, principal=principal, entity="support_session", entity_id=row.id, action="recorded",
          fields=data.model_fields_set)
    await session.flush()
    return row


async def list_support_sessions(*, session: AsyncSession, principal: Principal, grant_id: str) -> list[SupportSession]:
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    return list((await session.execute(select(SupportSession).where(SupportSession.grant_id == grant.id)
                                       .order_by(SupportSession.held_on))).scalars())


async def record_visit(*, session: AsyncSession, outbox: Outbox, principal: Principal, grant_id: str,
                       data: MonitoringVisitCreate) -> MonitoringVisit:
    grant = await _funded(session, principal, grant_id, "monitor")
    visit = MonitoringVisit(grant_id=grant.id, **data.model_dump())
    session.add(visit)
    audit(session, principal=principal, entity="monitoring_visit", entity_id=visit.id, action="recorded",
          fields=data.model_fields_set)
    outbox.emit(session, MonitoringRecorded(
        visit_id=visit.id, grant_id=grant.id, call_id=grant.call_id, beneficiary_id=grant.beneficiary_id,
        visited_on=data.visited_on, business_operating=data.business_operating,
        employees_female=data.employees_female, employees_male=data.employees_male,
        monthly_income_band=data.monthly_income_band, community_id=grant.community_id,
        district_pcode=grant.district_pcode, governorate_pcode=grant.governorate_pcode), subject_id=grant.id)
    await session.flush()
    return visit


async def list_visits(*, session: AsyncSession, principal: Principal, grant_id: str) -> list[MonitoringVisit]:
    grant = await get_grant(session=session, principal=principal, grant_id=grant_id)
    return list((await session.execute(select(MonitoringVisit).where(MonitoringVisit.grant_id == grant.id)
                                       .order_by(MonitoringVisit.visited_on))).scalars())


def remaining_budget(call: GrantCall) -> Decimal:
    return call.budget - call.committed_amount


ERASED = "[erased]"
RETENTION = Principal(sub="retention", roles=frozenset({"admin"}), governorates=frozenset({"*"}))


async def _erase_grants(session: AsyncSession, principal: Principal, grants: list[Grant], reason: str) -> None:
    """Clear what a grant holds about its person: the business name, and its monitoring visits' notes and
    coordinates. Amounts, dates, statuses and the pseudonymous place stay (the figures rest on them)."""
    for grant in grants:
        grant.business_name, grant.updated_at = ERASED, utcnow()
        session.add(grant)
        audit(session, principal=principal, entity="grant", entity_id=grant.id, action=f"erased_{reason}",
              fields={"business_name", "monitoring_visits.notes", "monitoring_visits.location"})
    if grants:
        table = MonitoringVisit.__table__  # type: ignore[attr-defined]
        await session.execute(table.update().where(table.c.grant_id.in_([g.id for g in grants]))
                              .values(notes=None, latitude=None, longitude=None))
    await session.flush()


async def erase_person(*, session: AsyncSession, principal: Principal, beneficiary_id: str) -> int:
    """Erase the personal data the grants of ``beneficiary_id`` hold (in the caller's governorates); returns how
    many grants. Doing it again changes nothing more (the beneficiaries service calls it before it erases)."""
    stmt = select_in_scope(Grant, principal).where(
        (Grant.beneficiary_id == beneficiary_id) | (Grant.requested_beneficiary_id == beneficiary_id),
        Grant.business_name != ERASED)
    grants = list((await session.execute(stmt)).scalars().all())
    await _erase_grants(session, principal, grants, "request")
    return len(grants)


async def erase_expired(session: AsyncSession, settings: Any) -> int:
    """Housekeeping: the same personal-data retention as the beneficiaries service
    (``CRP_PERSONAL_DATA_RETENTION_DAYS``), counted from a grant's last change."""
    days = getattr(settings, "personal_data_retention_days", None)
    if not days:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    grants = list((await session.execute(select(Grant).where(
        Grant.business_name != ERASED, Grant.updated_at < cutoff,
    ).limit(500).with_for_update(skip_locked=True))).scalars().all())  # replicas' housekeepers share the work
    await _erase_grants(session, RETENTION, grants, "retention")
    return len(grants)
