"""Events of the infrastructure service (the contract; consumers import this, never the service).

Pseudonymous and free of free text: ids, the community and its P-codes, sectors, statuses, dates, counts
(participants, catchment population) and the project's revision. Never a project title, a contractor, a
progress note, a local authority's name, a cancellation reason, a conflict-sensitivity note or a GPS point
(those stay in the infrastructure service).

Every project event is a full snapshot of the project's reportable state after the change, with
``revision`` (the project's version): a consumer keeps the newest revision it has seen, so it reaches the
same state in any arrival order (a ``handed_over`` seen before the ``completed`` still carries the
completion date and the catchment).
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from shared.events import EventData

Sector = Literal["water", "electricity", "health", "education", "roads", "sanitation", "livelihoods", "other"]
ProjectStatus = Literal["planned", "in_progress", "completed", "handed_over", "cancelled"]


class AssessmentCompleted(EventData):
    """A participatory community assessment was completed: its ranked priority sectors and who took part
    (counts only)."""

    service: ClassVar[str] = "infrastructure"
    entity: ClassVar[str] = "community_assessment"
    action: ClassVar[str] = "completed"

    assessment_id: str
    community_id: str
    district_pcode: str
    governorate_pcode: str
    assessed_on: date
    completed_on: date
    participants_female: int
    participants_male: int
    participants_idp: int
    participants_returnee: int
    participants_host_community: int
    local_authority_participated: bool
    priority_sectors: list[Sector]  # in rank order, the first is the community's first priority
    risks_identified: int  # how many risks a project could create were named (never their text)


class ProjectSnapshot(EventData):
    """A project's reportable state after the change (``revision`` orders them)."""

    service: ClassVar[str] = "infrastructure"
    entity: ClassVar[str] = "project"

    project_id: str
    revision: int
    status: ProjectStatus
    sector: Sector
    community_id: str
    district_pcode: str
    governorate_pcode: str
    assessment_id: str | None = None
    answers_priority: bool  # false: outside the community's assessed priorities (justified in the service)
    priority_rank: int | None = None
    catchment_population: int
    catchment_female: int | None = None
    catchment_male: int | None = None
    catchment_idp: int | None = None
    catchment_returnee: int | None = None
    catchment_host_community: int | None = None
    progress_percent: int
    planned_start: date | None = None
    planned_end: date | None = None
    started_on: date | None = None
    completed_on: date | None = None
    handed_over_on: date | None = None
    cancelled_on: date | None = None
    risks_to_mitigate: int = 0  # how many of the assessment's risks the project must mitigate


class ProjectCreated(ProjectSnapshot):
    """A project was planned (``status: planned``)."""

    action: ClassVar[str] = "created"


class ProjectStatusChanged(ProjectSnapshot):
    """The project moved to ``in_progress``, ``completed`` (its catchment now benefits) or ``cancelled``."""

    action: ClassVar[str] = "status_changed"

    previous_status: ProjectStatus
    changed_on: date


class ProjectHandedOver(ProjectSnapshot):
    """A completed project was handed over to the authority that will run it (``status: handed_over``; the
    authority's name stays in the service)."""

    action: ClassVar[str] = "handed_over"

    previous_status: ProjectStatus
    changed_on: date


class ProjectProgressRecorded(ProjectSnapshot):
    """A progress update of an ongoing project (the note stays in the service)."""

    action: ClassVar[str] = "progress_recorded"

    progress_id: str
    reported_on: date
