"""The indicators service: consumes every domain event into pseudonymous projections."""

from __future__ import annotations

from services.indicators.config import IndicatorsSettings
from services.indicators.models import LOGFRAME_TABLES, PROJECTION_TABLES
from services.indicators.projection import HANDLERS
from services.indicators.routes import routers
from shared.app import Service

service = Service(
    name="indicators",
    title="CRP indicators",
    description="The programme's reach, counted once per person from the platform's events.",
    routers=routers,
    tables=(*PROJECTION_TABLES, *LOGFRAME_TABLES),
    settings=IndicatorsSettings,
    handlers=HANDLERS,
)
create_app = service.create_app
