"""The rebuild's replay in memory: every handler of ``projection.HANDLERS`` as a fold over dicts, the derived
tables computed once at the end, everything written aside in bulk (``shared.rebuild.Replay``).

The live handlers keep ``reach`` and its counts per event (``reach.refresh``); since ``reach`` is a pure function
of ``persons`` and ``assistance`` (the property ``tests/indicators/test_projection_order.py`` checks), the replay
computes it, its counts (``reach_cells``, ``reach_monthly``, ``reach_communities``, ``reach_residences``) and the
registered people's counts (``registered_cells``) from the final persons and ledger instead. Each fold parses its
event before changing anything, so a poison leaves no trace (it becomes a dead letter, as live).
``tests/indicators/test_fast_rebuild.py`` proves the result equals the live handlers' table by table, row by row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from pydantic_core import PydanticUndefined
from sqlmodel import SQLModel

from services.indicators import feedback, grants, infrastructure, reach, training
from services.indicators.models import (
    Assistance,
    CommunityActivityFact,
    CommunityRef,
    FeedbackCase,
    FeedbackResourceCentre,
    GrantApplication,
    GrantDisbursement,
    GrantMonitoring,
    InfrastructureAssessment,
    InfrastructureProject,
    Person,
    Reach,
    ReachCommunity,
    ReachResidence,
    RegisteredCell,
    TrainingEnrolment,
    TrainingFollowUp,
)
from services.indicators.projection import _SNAPSHOT_FIELDS as PERSON_FIELDS
from shared.events import CloudEvent, age_group
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
    FeedbackSnapshot,
    FeedbackStatusChanged,
    ResourceCentreCreated,
    ResourceCentreSnapshot,
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
    EnrolmentSnapshot,
    FollowUpRecorded,
)
from shared.rebuild import Replay

Row = dict[str, Any]


def _defaults(model: type[SQLModel]) -> Row:
    return {name: None if field.default is PydanticUndefined else field.default
            for name, field in model.model_fields.items()}


_DEFAULTS = {model: _defaults(model) for model in (Person, Assistance, GrantDisbursement, TrainingEnrolment,
                                                    InfrastructureProject)}


def _new(model: type[SQLModel], **values: Any) -> Row:
    return {**_DEFAULTS[model], **values}


class IndicatorsReplay(Replay):
    def __init__(self, handled: Iterable[str]) -> None:
        super().__init__(handled)
        self.persons: dict[str, Row] = {}
        self.members: dict[str, set[str]] = {}  # survivor -> records merged into it (``merged_into_id``)
        self.communities: dict[str, Row] = {}
        self.assistance: dict[str, Row] = {}
        self.applications: dict[str, Row] = {}
        self.disbursements: dict[str, Row] = {}
        self.monitoring: dict[str, Row] = {}
        self.enrolments: dict[str, Row] = {}
        self.follow_ups: dict[str, Row] = {}
        self.projects: dict[str, Row] = {}
        self.assessments: dict[str, Row] = {}
        self.cases: dict[str, Row] = {}
        self.centres: dict[str, Row] = {}
        self.activities: dict[str, Row] = {}
        self.folds = {
            BeneficiaryRegistered.event_type(): self.on_registered,
            BeneficiaryUpdated.event_type(): self.on_updated,
            BeneficiaryMerged.event_type(): self.on_merged,
            CommunityCreated.event_type(): self.on_community_created,
            BeneficiaryConsentWithdrawn.event_type(): lambda event: None,
            BeneficiaryErased.event_type(): lambda event: None,
            **{model.event_type(): self._decision(model)
               for model in (GrantSubmitted, GrantApproved, GrantRejected, GrantCancelled)},
            DisbursementMade.event_type(): self.on_disbursement_made,
            DisbursementReversed.event_type(): self.on_disbursement_reversed,
            MonitoringRecorded.event_type(): self.on_monitoring_recorded,
            **{model.event_type(): self._enrolment(model)
               for model in (EnrolmentCreated, EnrolmentPromoted, EnrolmentDropped)},
            EnrolmentCompleted.event_type(): self.on_enrolment_completed,
            FollowUpRecorded.event_type(): self.on_follow_up_recorded,
            **{model.event_type(): self._project(model)
               for model in (ProjectCreated, ProjectStatusChanged, ProjectHandedOver, ProjectProgressRecorded)},
            AssessmentCompleted.event_type(): self.on_assessment_completed,
            FeedbackReceived.event_type(): self._case(FeedbackReceived),
            FeedbackStatusChanged.event_type(): self._case(FeedbackStatusChanged),
            ResourceCentreCreated.event_type(): self._centre(ResourceCentreCreated),
            ResourceCentreUpdated.event_type(): self._centre(ResourceCentreUpdated),
            CommunityActivityRecorded.event_type(): self.on_community_activity_recorded,
        }

    # -- beneficiaries (``projection``) -----------------------------------------------------------
    def _person(self, beneficiary_id: str) -> Row:
        person = self.persons.get(beneficiary_id)
        if person is None:
            person = self.persons[beneficiary_id] = _new(Person, beneficiary_id=beneficiary_id)
        return person

    def _snapshot(self, data: BeneficiaryRegistered | BeneficiaryUpdated) -> Row:
        person = self._person(data.beneficiary_id)
        if data.revision > person["revision"]:
            for name in PERSON_FIELDS:
                person[name] = getattr(data, name)
            person["revision"] = data.revision
        person["registered"] = True
        return person

    @staticmethod
    def _derive_registration(person: Row) -> None:
        at, birth_year = person["registered_at"], person["birth_year"]
        person["registered_month"] = at.strftime("%Y-%m") if at else None
        person["registered_age_group"] = age_group(birth_year, at) if at and birth_year else None

    def on_registered(self, event: CloudEvent) -> None:
        data = event.parse(BeneficiaryRegistered)
        person = self._snapshot(data)
        person["registered_at"] = data.registered_at
        self._derive_registration(person)

    def on_updated(self, event: CloudEvent) -> None:
        person = self._snapshot(event.parse(BeneficiaryUpdated))
        self._derive_registration(person)

    def survivor(self, beneficiary_id: str) -> str:
        seen = {beneficiary_id}
        current = self.persons.get(beneficiary_id)
        while current is not None and current["merged_into_id"] and current["merged_into_id"] not in seen:
            seen.add(current["merged_into_id"])
            beneficiary_id = current["merged_into_id"]
            current = self.persons.get(beneficiary_id)
        return beneficiary_id

    def _merge_into(self, record: Row, survivor: str) -> None:
        if (previous := record["merged_into_id"]) is not None:
            self.members.get(previous, set()).discard(record["beneficiary_id"])
        record["merged_into_id"] = survivor
        self.members.setdefault(survivor, set()).add(record["beneficiary_id"])

    def on_merged(self, event: CloudEvent) -> None:
        data = event.parse(BeneficiaryMerged)
        survivor = self.survivor(data.beneficiary_id)
        if survivor == data.duplicate_id:
            return
        self._merge_into(self._person(data.duplicate_id), survivor)
        # Whatever had been folded into the duplicate now points straight at the survivor.
        for member in list(self.members.pop(data.duplicate_id, ())):
            self.persons[member]["merged_into_id"] = None
            self._merge_into(self.persons[member], survivor)

    def on_community_created(self, event: CloudEvent) -> None:
        data = event.parse(CommunityCreated)
        self.communities.setdefault(data.community_id, dict(
            community_id=data.community_id, district_pcode=data.district_pcode,
            governorate_pcode=data.governorate_pcode))

    # -- the reach ledger (``reach.record_assistance``, ``reach.withdraw_assistance``) ------------------
    def _record(self, *, source_id: str, person_id: str, kind: str, pillar: str, on: Any, community_id: str | None,
                district_pcode: str | None, governorate_pcode: str | None) -> None:
        if pillar not in reach.PILLARS:
            raise ValueError(f"unknown pillar {pillar!r}")
        self.assistance.setdefault(source_id, dict(
            source_id=source_id, person_id=person_id, kind=kind, on=on, pillar=pillar, community_id=community_id,
            district_pcode=district_pcode, governorate_pcode=governorate_pcode))

    # -- grants ------------------------------------------------------------------------------------
    def _decision(self, model: type[grants.Decision]) -> Callable[[CloudEvent], None]:
        def fold(event: CloudEvent) -> None:
            data = event.parse(model)
            row = self.applications.get(data.grant_id)
            if row is None:
                self.applications[data.grant_id] = dict(
                    grant_id=data.grant_id, revision=data.revision, status=grants._status(data),
                    person_id=data.beneficiary_id, call_id=data.call_id, governorate_pcode=data.governorate_pcode)
            elif data.revision > row["revision"]:
                row["revision"], row["status"] = data.revision, grants._status(data)

        return fold

    @staticmethod
    def _disbursement(data: DisbursementMade | DisbursementReversed, reversed_: bool) -> Row:
        return dict(disbursement_id=data.disbursement_id, grant_id=data.grant_id, person_id=data.beneficiary_id,
                    call_id=data.call_id, currency=data.currency, amount=data.amount,
                    disbursed_on=data.disbursed_on, community_id=data.community_id,
                    governorate_pcode=data.governorate_pcode, reversed=reversed_)

    def on_disbursement_made(self, event: CloudEvent) -> None:
        data = event.parse(DisbursementMade)
        if data.disbursement_id in self.disbursements:
            return
        row = self._disbursement(data, False)
        self._record(source_id=grants._source(data.disbursement_id), person_id=data.beneficiary_id, kind="grant",
                     pillar="local_economies", on=data.disbursed_on, community_id=data.community_id,
                     district_pcode=data.district_pcode, governorate_pcode=data.governorate_pcode)
        self.disbursements[data.disbursement_id] = row

    def on_disbursement_reversed(self, event: CloudEvent) -> None:
        data = event.parse(DisbursementReversed)
        row = self.disbursements.get(data.disbursement_id)
        if row is None:
            self.disbursements[data.disbursement_id] = self._disbursement(data, True)
        else:
            row["reversed"] = True
        self.assistance.pop(grants._source(data.disbursement_id), None)

    def on_monitoring_recorded(self, event: CloudEvent) -> None:
        data = event.parse(MonitoringRecorded)
        self.monitoring.setdefault(data.visit_id, dict(
            visit_id=data.visit_id, grant_id=data.grant_id, visited_on=data.visited_on,
            business_operating=data.business_operating, employees_female=data.employees_female,
            employees_male=data.employees_male, governorate_pcode=data.governorate_pcode))

    # -- training ----------------------------------------------------------------------------------
    def _apply_enrolment(self, data: EnrolmentSnapshot) -> Row:
        row = self.enrolments.get(data.enrolment_id)
        if row is None:
            row = self.enrolments[data.enrolment_id] = _new(
                TrainingEnrolment, enrolment_id=data.enrolment_id, person_id=data.beneficiary_id,
                revision=data.revision, status=data.status,
                **{name: getattr(data, name) for name in training._SNAPSHOT_FIELDS})
        elif data.revision > row["revision"]:
            row["revision"], row["status"] = data.revision, data.status
            for name in training._SNAPSHOT_FIELDS:
                row[name] = getattr(data, name)
        return row

    def _enrolment(self, model: type[EnrolmentSnapshot]) -> Callable[[CloudEvent], None]:
        def fold(event: CloudEvent) -> None:
            self._apply_enrolment(event.parse(model))

        return fold

    def on_enrolment_completed(self, event: CloudEvent) -> None:
        data = event.parse(EnrolmentCompleted)
        pillar = "good_governance" if data.audience == "local_authority_staff" else "human_capital"
        row = self._apply_enrolment(data)
        row["completed_on"] = data.completed_on
        self._record(source_id=f"enrolment:{data.enrolment_id}", person_id=data.beneficiary_id, kind="training",
                     pillar=pillar, on=data.completed_on, community_id=data.community_id,
                     district_pcode=data.district_pcode, governorate_pcode=data.governorate_pcode)

    def on_follow_up_recorded(self, event: CloudEvent) -> None:
        data = event.parse(FollowUpRecorded)
        self.follow_ups.setdefault(data.follow_up_id, dict(
            follow_up_id=data.follow_up_id, enrolment_id=data.enrolment_id, person_id=data.beneficiary_id,
            months_after=data.months_after, employment_status=data.employment_status, income_band=data.income_band,
            recorded_on=data.recorded_on, governorate_pcode=data.governorate_pcode))

    # -- infrastructure ----------------------------------------------------------------------------
    def _project(self, model: type[Any]) -> Callable[[CloudEvent], None]:
        def fold(event: CloudEvent) -> None:
            data = event.parse(model)
            row = self.projects.get(data.project_id)
            if row is None:
                self.projects[data.project_id] = _new(
                    InfrastructureProject, project_id=data.project_id,
                    **{name: getattr(data, name) for name in infrastructure._SNAPSHOT_FIELDS})
            elif data.revision > row["revision"]:
                for name in infrastructure._SNAPSHOT_FIELDS:
                    row[name] = getattr(data, name)

        return fold

    def on_assessment_completed(self, event: CloudEvent) -> None:
        data = event.parse(AssessmentCompleted)
        self.assessments.setdefault(data.assessment_id, dict(
            assessment_id=data.assessment_id, community_id=data.community_id, district_pcode=data.district_pcode,
            governorate_pcode=data.governorate_pcode, completed_on=data.completed_on,
            participants_female=data.participants_female, participants_male=data.participants_male))

    # -- feedback ----------------------------------------------------------------------------------
    def _case(self, model: type[FeedbackSnapshot]) -> Callable[[CloudEvent], None]:
        def fold(event: CloudEvent) -> None:
            data = event.parse(model)
            row = self.cases.get(data.feedback_id)
            if row is None or data.revision > row["revision"]:
                self.cases[data.feedback_id] = dict(feedback_id=data.feedback_id, revision=data.revision,
                                                    **{name: getattr(data, name) for name in feedback._CASE_FIELDS})

        return fold

    def _centre(self, model: type[ResourceCentreSnapshot]) -> Callable[[CloudEvent], None]:
        def fold(event: CloudEvent) -> None:
            data = event.parse(model)
            row = self.centres.get(data.resource_centre_id)
            if row is None or data.revision > row["revision"]:
                self.centres[data.resource_centre_id] = dict(
                    resource_centre_id=data.resource_centre_id, revision=data.revision,
                    community_id=data.community_id, governorate_pcode=data.governorate_pcode, active=data.active)

        return fold

    def on_community_activity_recorded(self, event: CloudEvent) -> None:
        data = event.parse(CommunityActivityRecorded)
        self.activities.setdefault(data.activity_id, dict(
            activity_id=data.activity_id, kind=data.kind, community_id=data.community_id,
            governorate_pcode=data.governorate_pcode, held_on=data.held_on,
            participants_total=data.participants_total, participants_female=data.participants_female,
            participants_male=data.participants_male))

    # -- the derived tables, set-based -------------------------------------------------------------
    def reach_rows(self) -> list[Row]:
        """``reach``: per survivor, their first act of assistance (date, then source id) among their own and
        their merged records', described as ``reach._compute`` does."""
        first: dict[str, Row] = {}
        for row in self.assistance.values():
            owner = self.survivor(row["person_id"])
            best = first.get(owner)
            if best is None or (row["on"], row["source_id"]) < (best["on"], best["source_id"]):
                first[owner] = row
        rows = []
        for owner, a in first.items():
            person = self.persons.get(owner)
            birth_year = person["birth_year"] if person is not None else None
            rows.append(dict(
                person_id=owner, first_on=a["on"], month=a["on"].strftime("%Y-%m"), pillar=a["pillar"],
                community_id=a["community_id"] or reach.UNKNOWN, district_pcode=a["district_pcode"] or reach.UNKNOWN,
                governorate_pcode=a["governorate_pcode"] or reach.UNKNOWN,
                sex=(person["sex"] if person is not None and person["sex"] else reach.UNKNOWN),
                age_group=age_group(birth_year, a["on"]) if birth_year else reach.UNKNOWN,
                displacement_status=(person["displacement_status"] if person is not None
                                     and person["displacement_status"] else reach.UNKNOWN),
                disability=reach.disability(person["has_disability"] if person is not None else None),
                home_community_id=person["community_id"] if person is not None else None,
                home_governorate_pcode=person["governorate_pcode"] if person is not None else None))
        return rows

    def registered_rows(self) -> list[Row]:
        counts: Counter[tuple[tuple[str, str], ...]] = Counter()
        for person in self.persons.values():
            if person["registered"] and person["merged_into_id"] is None:
                counts[tuple({
                    "governorate_pcode": person["governorate_pcode"] or reach.UNKNOWN,
                    "month": person["registered_month"] or reach.UNKNOWN, "sex": person["sex"] or reach.UNKNOWN,
                    "age_group": person["registered_age_group"] or reach.UNKNOWN,
                    "displacement_status": person["displacement_status"] or reach.UNKNOWN,
                    "disability": reach.disability(person["has_disability"])}.items())] += 1
        return [{**dict(key), "people": n} for key, n in counts.items()]

    def projection_rows(self) -> Iterable[tuple[type[SQLModel], list[Row]]]:
        reach_rows = self.reach_rows()
        counts: list[tuple[type[SQLModel], list[Row]]] = []
        for model, dimensions in reach.COUNTS:
            cells = Counter(tuple(row[name] for name in dimensions) for row in reach_rows)
            counts.append((model, [{**dict(zip(dimensions, key, strict=True)), "people": n}
                                   for key, n in cells.items()]))
        communities: dict[str, Row] = {}
        residences: Counter[tuple[str, str]] = Counter()
        for row in reach_rows:
            community = communities.setdefault(row["community_id"], dict(
                community_id=row["community_id"], governorate_pcode=row["governorate_pcode"], people=0))
            community["people"] += 1
            community["governorate_pcode"] = min(community["governorate_pcode"], row["governorate_pcode"])
            if (key := reach.residence_key(row)) is not None:
                residences[(key["community_id"], key["governorate_pcode"])] += 1
        return (
            (Person, list(self.persons.values())),
            (CommunityRef, list(self.communities.values())),
            (Assistance, list(self.assistance.values())),
            (Reach, reach_rows),
            *counts,
            (ReachCommunity, list(communities.values())),
            (ReachResidence, [dict(community_id=c, governorate_pcode=g, people=n)
                              for (c, g), n in residences.items()]),
            (RegisteredCell, self.registered_rows()),
            (GrantApplication, list(self.applications.values())),
            (GrantDisbursement, list(self.disbursements.values())),
            (GrantMonitoring, list(self.monitoring.values())),
            (TrainingEnrolment, list(self.enrolments.values())),
            (TrainingFollowUp, list(self.follow_ups.values())),
            (InfrastructureProject, list(self.projects.values())),
            (InfrastructureAssessment, list(self.assessments.values())),
            (FeedbackCase, list(self.cases.values())),
            (FeedbackResourceCentre, list(self.centres.values())),
            (CommunityActivityFact, list(self.activities.values())),
        )
