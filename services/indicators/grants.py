"""Handlers for the grants service's events (``shared.events.grants``).

Any arrival order gives the same state: an application's decisions are ordered by ``revision``; a
disbursement and its reversal both carry every fact, and a reversal seen first leaves a tombstone
(``GrantDisbursement.reversed``) so the disbursement, arriving later, counts nothing. A non-reversed
disbursement is direct assistance under the local economies pillar, placed where the event says (the reach
ledger's ``disbursement:<id>``, ``services.indicators.reach``; merges applied there).
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.indicators.models import GrantApplication, GrantDisbursement, GrantMonitoring
from services.indicators.reach import record_assistance, withdraw_assistance
from shared.consumer import Handler
from shared.events import CloudEvent
from shared.events.grants import (
    DisbursementMade,
    DisbursementReversed,
    GrantApproved,
    GrantCancelled,
    GrantRejected,
    GrantSubmitted,
    MonitoringRecorded,
)

_STATUS = {GrantSubmitted: "submitted", GrantApproved: "approved", GrantRejected: "rejected"}
Decision = GrantSubmitted | GrantApproved | GrantRejected | GrantCancelled


def _status(data: Decision) -> str:
    if isinstance(data, GrantCancelled):
        return "cancelled" if data.by == "programme" else "withdrawn"
    return _STATUS[type(data)]


def _decision(model: type[Decision]) -> Handler:
    async def handle(session: AsyncSession, event: CloudEvent) -> None:
        data = event.parse(model)
        row = await session.get(GrantApplication, data.grant_id)
        if row is None:
            row = GrantApplication(grant_id=data.grant_id, status=_status(data), person_id=data.beneficiary_id,
                                   call_id=data.call_id, governorate_pcode=data.governorate_pcode,
                                   revision=data.revision)
            session.add(row)
        elif data.revision > row.revision:
            row.revision, row.status = data.revision, _status(data)

    return handle


def _disbursement(data: DisbursementMade | DisbursementReversed, *, reversed_: bool) -> GrantDisbursement:
    return GrantDisbursement(disbursement_id=data.disbursement_id, grant_id=data.grant_id,
                             person_id=data.beneficiary_id, call_id=data.call_id, currency=data.currency,
                             amount=data.amount, disbursed_on=data.disbursed_on, community_id=data.community_id,
                             governorate_pcode=data.governorate_pcode, reversed=reversed_)


def _source(disbursement_id: str) -> str:
    return f"disbursement:{disbursement_id}"


async def on_disbursement_made(session: AsyncSession, event: CloudEvent) -> None:
    data: DisbursementMade = event.parse(DisbursementMade)
    row = await session.get(GrantDisbursement, data.disbursement_id)
    if row is not None:
        return  # seen already, or its reversal came first (a tombstone): nothing to add
    session.add(_disbursement(data, reversed_=False))
    await record_assistance(session, source_id=_source(data.disbursement_id), person_id=data.beneficiary_id,
                            kind="grant", pillar="local_economies", on=data.disbursed_on,
                            community_id=data.community_id, district_pcode=data.district_pcode,
                            governorate_pcode=data.governorate_pcode)


async def on_disbursement_reversed(session: AsyncSession, event: CloudEvent) -> None:
    data: DisbursementReversed = event.parse(DisbursementReversed)
    row = await session.get(GrantDisbursement, data.disbursement_id)
    if row is None:
        session.add(_disbursement(data, reversed_=True))  # the tombstone
    else:
        row.reversed = True
    await withdraw_assistance(session, source_id=_source(data.disbursement_id))


async def on_monitoring_recorded(session: AsyncSession, event: CloudEvent) -> None:
    data: MonitoringRecorded = event.parse(MonitoringRecorded)
    if await session.get(GrantMonitoring, data.visit_id) is None:
        session.add(GrantMonitoring(visit_id=data.visit_id, grant_id=data.grant_id, visited_on=data.visited_on,
                                    business_operating=data.business_operating,
                                    employees_female=data.employees_female, employees_male=data.employees_male,
                                    governorate_pcode=data.governorate_pcode))


GRANT_HANDLERS: dict[str, Handler] = {
    GrantSubmitted.event_type(): _decision(GrantSubmitted),
    GrantApproved.event_type(): _decision(GrantApproved),
    GrantRejected.event_type(): _decision(GrantRejected),
    GrantCancelled.event_type(): _decision(GrantCancelled),
    DisbursementMade.event_type(): on_disbursement_made,
    DisbursementReversed.event_type(): on_disbursement_reversed,
    MonitoringRecorded.event_type(): on_monitoring_recorded,
}
