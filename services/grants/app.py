"""The grants service: small-business grant calls, applications, decisions, tranches, support, monitoring."""

from __future__ import annotations

from services.grants.config import GrantsSettings
from services.grants.models import Disbursement, Grant, GrantCall, GrantScore, MonitoringVisit, SupportSession
from services.grants.routes import routers
from services.grants.service import erase_expired
from shared.app import Service
from shared.audit import AuditEntry

service = Service(
    name="grants",
    title="CRP grants",
    description="Small-business grants: calls, applications checked at the beneficiaries service, scoring, "
                "decisions within budget, tranche disbursements gated by monitoring, technical support.",
    routers=routers,
    tables=(GrantCall, Grant, GrantScore, Disbursement, SupportSession, MonitoringVisit, AuditEntry),
    settings=GrantsSettings,
    housekeeping=erase_expired,
)
create_app = service.create_app
