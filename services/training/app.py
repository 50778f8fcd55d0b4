"""The training service: vocational courses, enrolment with capacity and a waiting list, attendance-based
completion, employment follow-ups, and matching with the job market."""

from __future__ import annotations

from services.training.config import TrainingSettings
from services.training.models import TABLES
from services.training.routes import routers
from shared.app import Service
from shared.audit import AuditEntry

service = Service(
    name="training",
    title="CRP training",
    description="Vocational courses matched to the local job market: enrolment with capacity and a waiting "
                "list, attendance-based completion, certification, employment follow-ups and market matching.",
    routers=routers,
    tables=(*TABLES, AuditEntry),
    settings=TrainingSettings,
)
create_app = service.create_app
