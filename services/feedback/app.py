"""The feedback service: community engagement and accountability. Complaints and feedback from every channel
(sensitive ones seen only by the PSEA focal point), followed by the public with a reference and PIN, within
service levels; community resource centres; dialogue, reconciliation and civic engagement activities."""

from __future__ import annotations

from services.feedback.config import FeedbackSettings
from services.feedback.models import TABLES
from services.feedback.routes import routers
from services.feedback.service import erase_expired
from shared.app import Service
from shared.audit import AuditEntry

service = Service(
    name="feedback",
    title="CRP feedback",
    description="Community engagement and accountability: feedback and complaints from every channel, with a "
                "reference and PIN to follow them without an account; sensitive cases (sexual exploitation and "
                "abuse, fraud and corruption, staff misconduct) seen by the PSEA focal point alone; service levels; "
                "community resource centres; dialogue, reconciliation and civic engagement activities.",
    routers=routers,
    tables=(*TABLES, AuditEntry),
    settings=FeedbackSettings,
    housekeeping=erase_expired,
)
create_app = service.create_app
