"""The indicators service: consumes every domain event into pseudonymous projections."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.indicators.config import IndicatorsSettings
from services.indicators.projection import make_applier
from services.indicators.routes import routers
from shared.app import ServiceSpec, create_service_app
from shared.consumer import EventConsumer

MIGRATIONS = Path(__file__).parent / "migrations"
Settings = IndicatorsSettings


def create_app(settings: IndicatorsSettings | None = None) -> FastAPI:
    settings = settings or IndicatorsSettings()
    applier = make_applier()

    def consumer(app: FastAPI) -> EventConsumer:
        return EventConsumer(settings, app.state.sessionmaker, app.state.bus, applier,
                             durable=settings.consumer_durable, max_attempts=settings.consumer_max_attempts,
                             ack_wait=settings.consumer_ack_wait_seconds)

    app = create_service_app(ServiceSpec(
        settings=settings,
        title="CRP indicators",
        description="The programme's reach, counted once per person from the platform's events.",
        routers=routers,
        migrations=MIGRATIONS,
        workers=(consumer,),
    ))
    app.state.applier = applier
    return app
