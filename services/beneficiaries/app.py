"""The beneficiaries service: communities, households and the people registered in them."""

from __future__ import annotations

from services.beneficiaries.config import BeneficiariesSettings
from services.beneficiaries.imports.models import ImportJob, ImportRow
from services.beneficiaries.imports.routes import routers as import_routers
from services.beneficiaries.imports.worker import ImportWorker
from services.beneficiaries.kobo.models import KOBO_TABLES
from services.beneficiaries.kobo.routes import routers as kobo_routers
from services.beneficiaries.kobo.worker import KoboPuller
from services.beneficiaries.models import Beneficiary, Community, DuplicateReview, Household
from services.beneficiaries.registrations import Registrations
from services.beneficiaries.routes import routers
from services.beneficiaries.service import erase_expired
from shared.app import Service
from shared.audit import AuditEntry

service = Service(
    name="beneficiaries",
    title="CRP beneficiaries",
    description="Registration of displaced people, returnees and host communities, with consent, "
                "duplicate detection and governorate scoping.",
    # /beneficiaries/imports... and /beneficiaries/kobo-sources... before /beneficiaries/{id}
    routers=(*import_routers, *kobo_routers, *routers),
    tables=(Community, Household, Beneficiary, DuplicateReview, AuditEntry, ImportJob, ImportRow, *KOBO_TABLES),
    settings=BeneficiariesSettings,
    housekeeping=erase_expired,
    workers=(ImportWorker, KoboPuller, Registrations),
)
create_app = service.create_app
