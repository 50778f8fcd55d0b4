"""The beneficiaries service: communities, households and the people registered in them."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.routes import routers
from shared.app import ServiceSpec, create_service_app

MIGRATIONS = Path(__file__).parent / "migrations"
Settings = BeneficiariesSettings


def create_app(settings: BeneficiariesSettings | None = None) -> FastAPI:
    return create_service_app(ServiceSpec(
        settings=settings or BeneficiariesSettings(),
        title="CRP beneficiaries",
        description="Registration of displaced people, returnees and host communities, with consent, "
                    "duplicate detection and governorate scoping.",
        routers=routers,
        migrations=MIGRATIONS,
    ))
