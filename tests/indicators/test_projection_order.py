"""Every projection handler gives the same final state in any arrival order, duplicates included.

Delivery is at least once and in no particular order (see ``shared.outbox``), so this is what the
figures rest on. A recorded sequence, as the producers emit it, is applied in order into a fresh
projection, then in many seeded shuffles with random duplicates into fresh projections (through the
consumer's own policy, ``apply_or_dead_letter``); every projection table must come out identical.

The test is generic over the handler set: it applies whatever ``HANDLERS`` holds and compares every
table in ``PROJECTION_TABLES``. A service that adds handlers adds its events to ``recorded_sequence``
(``test_recorded_sequence_exercises_every_handler`` fails until it does).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, inspect, select

from services.indicators.app import service
from services.indicators.config import IndicatorsSettings
from services.indicators.models import PROJECTION_TABLES
from services.indicators.projection import HANDLERS
from shared.consumer import DeadLetter, Outcome, ParkedEvent, ProcessedEvent, apply_or_dead_letter
from shared.db import create_engine, create_sessionmaker
from shared.events import CloudEvent, EventData
from shared.events.beneficiaries import (
    BeneficiaryConsentWithdrawn,
    BeneficiaryErased,
    BeneficiaryMerged,
    BeneficiaryRegistered,
    BeneficiaryUpdated,
    CommunityCreated,
)
from shared.events.feedback import (
    CommunityActivityRecorded,
    FeedbackReceived,
    FeedbackStatusChanged,
    ResourceCentreCreated,
    ResourceCentreUpdated,
)
from shared.events.grants import (
    DisbursementMade,
    DisbursementReversed,
    GrantApproved,
    GrantCancelled,
    GrantRejected,
    GrantSubmitted,
    MonitoringRecorded,
)
from shared.events.infrastructure import (
    AssessmentCompleted,
    ProjectCreated,
    ProjectHandedOver,
    ProjectProgressRecorded,
    ProjectStatusChanged,
)
from shared.events.training import (
    EnrolmentCompleted,
    EnrolmentCreated,
    EnrolmentDropped,
    EnrolmentPromoted,
    FollowUpRecorded,
)
from tests.conftest import Env

SHUFFLES = {"sqlite": 30, "postgresql": 5}


class Producers:
    """Just enough of the producing services to emit a realistic, valid event history."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.events: list[CloudEvent] = []
        self.version: dict[str, int] = {}
        self.snapshot: dict[str, dict[str, Any]] = {}
        self.clock = datetime(2026, 3, 1, 9, tzinfo=UTC)
        self.enrolments: dict[str, dict[str, Any]] = {}

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _emit(self, data: EventData, subject: str) -> None:
        self.clock += timedelta(minutes=7)
        self.events.append(CloudEvent(id=self._uuid(), source=f"/crp/{data.service}", type=data.event_type(),
                                      time=self.clock, subject=subject, data=data.model_dump(mode="json")))

    def community(self, district: str) -> str:
        community_id = self._uuid()
        self._emit(CommunityCreated(community_id=community_id, district_pcode=district,
                                    governorate_pcode=district[:5]), community_id)
        return community_id

    def register(self, community_id: str, district: str) -> str:
        person = self._uuid()
        self.version[person] = 1
        self.snapshot[person] = dict(
            sex=self.rng.choice(["female", "male"]), birth_year=self.rng.randint(1940, 2022),
            displacement_status=self.rng.choice(["idp", "returnee", "host_community"]), community_id=community_id,
            household_id=self.rng.choice([None, self._uuid()]), district_pcode=district,
            governorate_pcode=district[:5], has_disability=self.rng.random() < 0.2)
        self._emit(BeneficiaryRegistered(beneficiary_id=person, revision=1, registered_at=self.clock,
                                         **self.snapshot[person]), person)
        return person

    def update(self, person: str, **changes: Any) -> None:
        self.version[person] += 1
        self.snapshot[person].update(changes)
        self._emit(BeneficiaryUpdated(beneficiary_id=person, revision=self.version[person],
                                      changed_fields=sorted(changes), **self.snapshot[person]), person)

    def withdraw_consent(self, person: str) -> None:
        self.version[person] += 1
        self._emit(BeneficiaryConsentWithdrawn(beneficiary_id=person, revision=self.version[person],
                                               withdrawn_on=self.clock.date()), person)

    def erase(self, person: str) -> None:
        self.version[person] += 1
        self._emit(BeneficiaryErased(beneficiary_id=person, revision=self.version[person], reason="request"), person)

    def merge(self, survivor: str, duplicate: str) -> None:
        for record in (survivor, duplicate):
            self.version[record] += 1  # as the beneficiaries service does: both records change
        self._emit(BeneficiaryMerged(beneficiary_id=survivor, duplicate_id=duplicate, merged_at=self.clock), survivor)

    # -- the grants service: an application's events carry its version as ``revision``
    def apply_for_grant(self, person: str, call_id: str | None = None, currency: str = "USD") -> str:
        grant = self._uuid()
        snap = self.snapshot[person]
        self.grants = getattr(self, "grants", {})
        self.grants[grant] = dict(grant_id=grant, revision=1, call_id=call_id, beneficiary_id=person,
                                  sector="agriculture", currency=currency, community_id=snap["community_id"],
                                  district_pcode=snap["district_pcode"], governorate_pcode=snap["governorate_pcode"])
        self._emit(GrantSubmitted(**self.grants[grant], amount_requested="1500.00", submitted_on=self.clock.date()),
                   grant)
        return grant

    def _grant(self, grant: str) -> dict[str, Any]:
        self.grants[grant]["revision"] += 1
        return self.grants[grant]

    def approve(self, grant: str, amount: str = "1500.00") -> None:
        self._emit(GrantApproved(**self._grant(grant), amount_approved=amount, approved_on=self.clock.date()), grant)

    def reject(self, grant: str) -> None:
        self._emit(GrantRejected(**self._grant(grant), rejected_on=self.clock.date()), grant)

    def cancel(self, grant: str, by: str = "programme") -> None:
        self._emit(GrantCancelled(**self._grant(grant), by=by, cancelled_on=self.clock.date()), grant)

    def disburse(self, grant: str, amount: str, tranche: int = 1) -> dict[str, Any]:
        made = dict(**self._grant(grant), disbursement_id=self._uuid(), tranche=tranche, amount=amount,
                    disbursed_on=self.clock.date())
        self._emit(DisbursementMade(**made), grant)
        return made

    def reverse(self, made: dict[str, Any]) -> None:
        self._emit(DisbursementReversed(**{**made, **self._grant(made["grant_id"])}, reversed_on=self.clock.date()),
                   made["grant_id"])

    def monitor(self, grant: str, operating: bool) -> None:
        facts = self.grants[grant]
        self._emit(MonitoringRecorded(
            visit_id=self._uuid(), grant_id=grant, call_id=facts["call_id"], beneficiary_id=facts["beneficiary_id"],
            visited_on=self.clock.date(), business_operating=operating, employees_female=1, employees_male=2,
            monthly_income_band="250k_500k", community_id=facts["community_id"],
            district_pcode=facts["district_pcode"], governorate_pcode=facts["governorate_pcode"]), grant)

    # the training service
    def enrol(self, person: str, community_id: str, district: str, *, status: str = "enrolled",
              audience: str = "community_members") -> str:
        enrolment = self._uuid()
        self.version[enrolment] = 1
        self.enrolments[enrolment] = dict(
            enrolment_id=enrolment, course_id=self._uuid(), beneficiary_id=person,
            skill_area=self.rng.choice(["tailoring", "welding"]), audience=audience,
            community_id=community_id, district_pcode=district, governorate_pcode=district[:5])
        self._emit(EnrolmentCreated(**self.enrolments[enrolment], revision=1, status=status,
                                    enrolled_on=self.clock.date()), enrolment)
        return enrolment

    def _step(self, enrolment: str, event: type[EventData], status: str, **extra: Any) -> None:
        self.version[enrolment] += self.rng.randint(1, 4)  # attendance bumps the version in between
        self._emit(event(**self.enrolments[enrolment], revision=self.version[enrolment], status=status, **extra),
                   enrolment)

    def complete(self, enrolment: str) -> None:
        self._step(enrolment, EnrolmentCompleted, "completed", completed_on=self.clock.date(),
                   certified=self.rng.random() < 0.5, attendance_percent=self.rng.randint(80, 100), overridden=False)

    def drop(self, enrolment: str) -> None:
        self._step(enrolment, EnrolmentDropped, "dropped", dropped_on=self.clock.date(), reason="health")

    def promote(self, enrolment: str) -> None:
        self._step(enrolment, EnrolmentPromoted, "enrolled", promoted_on=self.clock.date())

    def follow_up(self, enrolment: str, months_after: int, employment_status: str) -> None:
        e = self.enrolments[enrolment]
        self._emit(FollowUpRecorded(follow_up_id=self._uuid(), enrolment_id=enrolment,
                                    beneficiary_id=e["beneficiary_id"], months_after=months_after,
                                    employment_status=employment_status, income_band="under_250k",
                                    recorded_on=self.clock.date(), skill_area=e["skill_area"],
                                    governorate_pcode=e["governorate_pcode"]), enrolment)

    # the feedback service: a case's and a centre's events carry their whole snapshot and version as ``revision``
    def centre(self, community_id: str, district: str) -> str:
        centre = self._uuid()
        self.centres = getattr(self, "centres", {})
        self.centres[centre] = dict(resource_centre_id=centre, revision=1, community_id=community_id,
                                    district_pcode=district, governorate_pcode=district[:5], active=True)
        self._emit(ResourceCentreCreated(**self.centres[centre]), centre)
        return centre

    def set_centre_active(self, centre: str, active: bool) -> None:
        facts = self.centres[centre]
        facts.update(revision=facts["revision"] + 1, active=active)
        self._emit(ResourceCentreUpdated(**facts), centre)

    def feedback(self, category: str, community_id: str | None, district: str | None,
                 centre: str | None = None) -> str:
        case = self._uuid()
        self.cases = getattr(self, "cases", {})
        self.cases[case] = dict(
            feedback_id=case, revision=1, status="received", category=category, channel="hotline",
            sensitive=category in ("sea", "fraud_corruption", "staff_misconduct"), community_id=community_id,
            district_pcode=district, governorate_pcode=district[:5] if district else None, resource_centre_id=centre,
            received_on=self.clock.date(), acknowledged_within_service_level=None,
            resolved_within_service_level=None)
        self._emit(FeedbackReceived(**self.cases[case]), case)
        return case

    def move(self, case: str, status: str, *, acknowledged: bool | None = None, resolved: bool | None = None) -> None:
        facts = self.cases[case]
        previous = facts["status"]
        facts["revision"] += self.rng.randint(1, 2)  # a response bumps the version in between
        facts.update(status=status)
        if acknowledged is not None:
            facts["acknowledged_within_service_level"] = acknowledged
        facts["resolved_within_service_level"] = resolved
        self._emit(FeedbackStatusChanged(**facts, previous_status=previous, changed_on=self.clock.date()), case)

    def activity(self, kind: str, community_id: str, district: str, total: int, centre: str | None = None) -> None:
        activity = self._uuid()
        self._emit(CommunityActivityRecorded(
            activity_id=activity, kind=kind, community_id=community_id, district_pcode=district,
            governorate_pcode=district[:5], resource_centre_id=centre, held_on=self.clock.date(),
            participants_total=total, participants_female=total // 2, participants_male=total - total // 2,
            participants_idp=total // 3, participants_returnee=0, participants_host_community=total // 3), activity)
    # the infrastructure service: every project event is a whole snapshot with the project's version
    def assess(self, community_id: str, district: str) -> None:
        self._emit(AssessmentCompleted(
            assessment_id=self._uuid(), community_id=community_id, district_pcode=district,
            governorate_pcode=district[:5], assessed_on=self.clock.date(), completed_on=self.clock.date(),
            participants_female=12, participants_male=15, participants_idp=5, participants_returnee=8,
            participants_host_community=14, local_authority_participated=True, priority_sectors=["water", "roads"],
            risks_identified=2), community_id)

    def plan_project(self, community_id: str, district: str, sector: str, catchment: int) -> str:
        project = self._uuid()
        self.version[project] = 1
        self.snapshot[project] = dict(
            project_id=project, status="planned", sector=sector, community_id=community_id, district_pcode=district,
            governorate_pcode=district[:5], answers_priority=sector != "education", catchment_population=catchment,
            catchment_female=catchment // 2, catchment_idp=catchment // 4, progress_percent=0,
            planned_start=self.clock.date())
        self._emit(ProjectCreated(**self.snapshot[project], revision=1), project)
        return project

    def move_project(self, project: str, status: str) -> None:
        snap, previous = self.snapshot[project], self.snapshot[project]["status"]
        self.version[project] += 1
        on = self.clock.date()
        snap["status"] = status
        snap.update({"in_progress": {"started_on": on}, "completed": {"completed_on": on, "progress_percent": 100},
                     "handed_over": {"handed_over_on": on}, "cancelled": {"cancelled_on": on}}[status])
        event = ProjectHandedOver if status == "handed_over" else ProjectStatusChanged
        self._emit(event(**snap, revision=self.version[project], previous_status=previous, changed_on=on), project)

    def report_progress(self, project: str, percent: int) -> None:
        self.version[project] += 1
        self.snapshot[project]["progress_percent"] = percent
        self._emit(ProjectProgressRecorded(**self.snapshot[project], revision=self.version[project],
                                           progress_id=self._uuid(), reported_on=self.clock.date()), project)


def recorded_sequence() -> list[CloudEvent]:
    p = Producers(seed=20261129)
    mosul, erbil, anbar = "IQG15Q05", "IQG07Q01", "IQG01Q03"
    old_city, ankawa, ramadi = p.community(mosul), p.community(erbil), p.community(anbar)
    a, b, c = (p.register(old_city, mosul) for _ in range(3))
    p.update(b, displacement_status="returnee")
    p.merge(b, a)  # a chain: A into B ...
    p.update(b, community_id=ankawa, district_pcode=erbil, governorate_pcode="IQG07")
    p.merge(c, b)  # ... then B into C: A and B both count as C
    p.update(c, has_disability=True)
    d, e, f = (p.register(ankawa, erbil) for _ in range(3))
    p.merge(e, d)
    p.merge(e, f)  # two duplicates into one survivor
    for _ in range(3):
        person = p.register(ramadi, anbar)
        for _ in range(p.rng.randint(0, 2)):
            p.update(person, birth_year=p.rng.randint(1940, 2022))
    g = p.register(ramadi, anbar)
    h = p.register(old_city, mosul)
    p.update(g, displacement_status="idp", household_id=None)
    p.merge(h, g)
    p.update(h, sex="female")
    p.withdraw_consent(h)
    p.erase(h)  # the person is forgotten: the counts stay
    p.update(h, displacement_status="returnee")  # a later edit still applies
    # Grants: a duplicate's grant counts for its survivor; a reversed tranche counts nothing; a person
    # whose only disbursement was reversed is not assisted.
    call = p._uuid()
    paid = p.apply_for_grant(a, call)  # a was merged into b, then into c: c is assisted
    p.approve(paid)
    first = p.disburse(paid, "1000.00")
    p.monitor(paid, operating=True)
    p.disburse(paid, "500.00", tranche=2)
    p.reverse(first)
    both = p.apply_for_grant(c, currency="IQD")  # the same person again, another grant, no call
    p.approve(both, "2000000.00")
    p.disburse(both, "2000000.00")
    undone = p.apply_for_grant(d, call)
    p.approve(undone)
    p.reverse(p.disburse(undone, "700.00"))  # d (merged into e) ends up not assisted
    p.monitor(undone, operating=False)
    p.reject(p.apply_for_grant(f, call))
    dropped = p.apply_for_grant(g, call)
    p.approve(dropped)
    p.cancel(dropped)
    p.cancel(p.apply_for_grant(h, call), by="applicant")

    # training: a merged record and its survivor both complete (one person), a dropout frees a place for the
    # waiting list, follow-ups at 3 and 6 months
    first = p.enrol(a, old_city, mosul)
    p.complete(first)
    p.follow_up(first, 3, "unemployed")
    p.follow_up(first, 6, "employed")
    second = p.enrol(c, ankawa, erbil)
    p.complete(second)
    leaving, waiting = p.enrol(e, ankawa, erbil), p.enrol(h, old_city, mosul, status="waitlisted")
    p.drop(leaving)
    p.promote(waiting)
    p.complete(waiting)
    p.follow_up(waiting, 3, "self_employed")
    p.drop(p.enrol(g, ramadi, anbar, status="waitlisted"))

    # feedback: a centre closed then reopened, another closed; cases resolved within and late, one reopened and
    # resolved again, a sensitive one, one without a place; reconciliation twice in one community
    hub = p.centre(old_city, mosul)
    p.set_centre_active(hub, False)
    p.set_centre_active(hub, True)
    p.set_centre_active(p.centre(ramadi, anbar), False)
    quick = p.feedback("information_request", old_city, mosul, hub)
    p.move(quick, "acknowledged", acknowledged=True)
    p.move(quick, "resolved", resolved=True)
    p.move(quick, "closed", resolved=True)
    late = p.feedback("major_dissatisfaction", ankawa, erbil)
    p.move(late, "in_progress", acknowledged=False)
    p.move(late, "resolved", resolved=True)
    p.move(late, "in_progress")  # reopened
    p.move(late, "resolved", resolved=False)
    abuse = p.feedback("sea", ramadi, anbar)
    p.move(abuse, "referred", acknowledged=True)
    p.move(abuse, "resolved", resolved=True)
    p.feedback("appreciation", None, None)
    p.activity("reconciliation", ramadi, anbar, 40)
    p.activity("reconciliation", ramadi, anbar, 25)
    p.activity("dialogue", old_city, mosul, 18, hub)
    # infrastructure: an assessed community with a project handed over and another cancelled; a project completed
    # (not handed over) elsewhere; one still in progress
    p.assess(old_city, mosul)
    network = p.plan_project(old_city, mosul, "water", 1200)
    p.move_project(network, "in_progress")
    p.report_progress(network, 30)
    p.report_progress(network, 70)
    p.move_project(network, "completed")
    p.move_project(network, "handed_over")
    school = p.plan_project(old_city, mosul, "education", 400)
    p.move_project(school, "in_progress")
    p.move_project(school, "cancelled")
    road = p.plan_project(ramadi, anbar, "roads", 5000)
    p.move_project(road, "in_progress")
    p.move_project(road, "completed")
    clinic = p.plan_project(ankawa, erbil, "health", 800)
    p.move_project(clinic, "in_progress")
    p.report_progress(clinic, 10)
    p.assess(ramadi, anbar)
    # the reach ledger: a local official trained (good governance) who also had a grant in another governorate
    # earlier (placed there, aged then); the grant's reversal moves the first assistance to the training
    official = p.register(ankawa, erbil)
    p.complete(p.enrol(official, ankawa, erbil, audience="local_authority_staff"))
    grant = p.apply_for_grant(official)
    p.approve(grant)
    p.reverse(p.disburse(grant, "300.00"))
    p.disburse(grant, "300.00")
    return p.events


SEQUENCE = recorded_sequence()


def test_recorded_sequence_exercises_every_handler() -> None:
    assert set(HANDLERS) <= {event.type for event in SEQUENCE}, "add the new handler's events to the sequence"


async def _reset(sessionmaker: Any) -> None:
    async with sessionmaker() as session, session.begin():
        for table in (*PROJECTION_TABLES, ProcessedEvent, ParkedEvent, DeadLetter):
            await session.execute(delete(table))


async def _apply(sessionmaker: Any, events: list[CloudEvent]) -> None:
    """Through the consumer's policy, in one transaction (as a rebuild does) to keep many orders quick;
    the identity map is emptied between events, so each handler reads the database as a fresh session would."""
    applier = service.applier()
    async with sessionmaker() as session, session.begin():
        for event in events:
            outcome = await apply_or_dead_letter(session, applier, subject=event.type,
                                                 payload=event.model_dump_json().encode(), attempt=1, max_attempts=1)
            assert outcome is Outcome.SETTLED, f"{event.type} {event.id} was dead-lettered in this order"
            session.expunge_all()


async def _dump(sessionmaker: Any) -> dict[str, list[dict[str, Any]]]:
    """Every projection table, rows in primary-key order: the state the figures are computed from."""
    dump = {}
    async with sessionmaker() as session:
        for table in PROJECTION_TABLES:
            key = inspect(table).primary_key
            rows = (await session.execute(select(table).order_by(*key))).scalars().all()
            dump[table.__tablename__] = [row.model_dump() for row in rows]
    return dump


def _shuffled_with_duplicates(rng: random.Random) -> list[CloudEvent]:
    order = list(SEQUENCE)
    rng.shuffle(order)
    for event in rng.sample(SEQUENCE, k=rng.randint(1, len(SEQUENCE) // 4)):  # redeliveries, anywhere
        order.insert(rng.randrange(len(order) + 1), event)
    return order


async def test_projection_is_the_same_in_any_arrival_order_with_duplicates(env: Env) -> None:
    settings = env.settings(IndicatorsSettings)
    engine = create_engine(settings)
    try:
        await service.migrate(engine, settings)
        sessionmaker = create_sessionmaker(engine)
        await _apply(sessionmaker, SEQUENCE)
        expected = await _dump(sessionmaker)
        assert sum(1 for p in expected["persons"] if p["merged_into_id"]) == 5  # the merges did take effect
        assert sorted(a["kind"] for a in expected["assistance"]) == ["grant", "grant", "grant", "training",
                                                                     "training", "training", "training"]
        # the reach ledger: c (a and b merged in), h (g merged in) and the official, each once
        assert len(expected["reach"]) == 3 and sum(c["people"] for c in expected["reach_cells"]) == 3
        assert {a["pillar"] for a in expected["assistance"]} == {"good_governance", "human_capital",
                                                                 "local_economies"}
        assert len(expected["training_follow_ups"]) == 3
        assert sum(d["reversed"] for d in expected["grant_disbursements"]) == 3
        assert sorted(g["status"] for g in expected["grant_applications"]) == [
            "approved", "approved", "approved", "approved", "cancelled", "rejected", "withdrawn"]
        projects = {p["sector"]: p for p in expected["infrastructure_projects"]}
        assert {s: p["status"] for s, p in projects.items()} == {
            "water": "handed_over", "education": "cancelled", "roads": "completed", "health": "in_progress"}
        assert projects["water"]["completed_on"] and projects["water"]["progress_percent"] == 100
        assert projects["health"]["progress_percent"] == 10 and projects["health"]["completed_on"] is None
        assert len(expected["infrastructure_assessments"]) == 2
        rng = random.Random(4242)
        for run in range(SHUFFLES[env.backend]):
            order = _shuffled_with_duplicates(rng)
            await _reset(sessionmaker)
            await _apply(sessionmaker, order)
            got = await _dump(sessionmaker)
            assert got == expected, f"order #{run} differs: {[e.id[:8] for e in order]}"
    finally:
        await engine.dispose()
