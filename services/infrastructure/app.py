"""The infrastructure service: community assessments (priorities, contributions, conflict sensitivity) and the
rehabilitation projects that answer them, from planning to handover to the responsible authority."""

from __future__ import annotations

from services.infrastructure.config import InfrastructureSettings
from services.infrastructure.models import TABLES
from services.infrastructure.routes import routers
from shared.app import Service
from shared.audit import AuditEntry

service = Service(
    name="infrastructure",
    title="CRP infrastructure",
    description="Community-prioritised rehabilitation of public infrastructure: participatory community "
                "assessments with a conflict-sensitivity analysis, projects that answer their priorities, a dated "
                "lifecycle with progress history, handover to the responsible authority, and a GeoJSON map view.",
    routers=routers,
    tables=(*TABLES, AuditEntry),
    settings=InfrastructureSettings,
)
create_app = service.create_app
