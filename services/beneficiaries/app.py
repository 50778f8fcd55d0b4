"""The beneficiaries service: communities, households and the people registered in them."""

from __future__ import annotations

from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.models import Beneficiary, Community, DuplicateReview, Household
from services.beneficiaries.routes import routers
from shared.app import Service
from shared.audit import AuditEntry

service = Service(
    name="beneficiaries",
    title="CRP beneficiaries",
    description="Registration of displaced people, returnees and host communities, with consent, "
                "duplicate detection and governorate scoping.",
    routers=routers,
    tables=(Community, Household, Beneficiary, DuplicateReview, AuditEntry),
    settings=BeneficiariesSettings,
)
create_app = service.create_app
