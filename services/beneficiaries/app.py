"""The beneficiaries service: communities, households and the people registered in them."""

from __future__ import annotations

from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.imports.models import ImportJob, ImportRow
from services.beneficiaries.imports.routes import routers as import_routers
from services.beneficiaries.imports.worker import ImportWorker
from services.beneficiaries.models import Beneficiary, Community, Household
from services.beneficiaries.routes import routers
from shared.app import Service
from shared.audit import AuditEntry

service = Service(
    name="beneficiaries",
    title="CRP beneficiaries",
    description="Registration of displaced people, returnees and host communities, with consent, "
                "duplicate detection and governorate scoping.",
    routers=(*import_routers, *routers),  # /beneficiaries/imports... before /beneficiaries/{id}
    tables=(Community, Household, Beneficiary, AuditEntry, ImportJob, ImportRow),
    settings=BeneficiariesSettings,
    workers=(ImportWorker,),
)
create_app = service.create_app
