from pydantic import BaseModel, Field

from shared.settings import CommonSettings


class ServiceLevel(BaseModel):
    """How long a case of a category may wait: to be acknowledged, and to be resolved (hours from receipt)."""

    acknowledge_hours: float = Field(gt=0)
    resolve_hours: float = Field(gt=0)


ORDINARY_LEVEL = ServiceLevel(acknowledge_hours=7 * 24, resolve_hours=30 * 24)
SENSITIVE_LEVEL = ServiceLevel(acknowledge_hours=24, resolve_hours=72)


class FeedbackSettings(CommonSettings):
    service_name: str = "feedback"
    # Resolved or closed cases unchanged for this many days lose their text and contact (housekeeping); the same
    # setting as the beneficiaries and grants services'. Unset keeps them.
    personal_data_retention_days: int | None = Field(default=None, ge=1)

    # Service levels per category (CRP_FEEDBACK_SERVICE_LEVELS, JSON: {"sea": {"acknowledge_hours": 12,
    # "resolve_hours": 48}}); a category not named keeps the default: 7 days and 30 days, the sensitive
    # categories 24 and 72 hours. A case keeps the levels in force when it was received.
    feedback_service_levels: dict[str, ServiceLevel] = {}

    # The public status page's PIN throttle: this many wrong PINs for one reference (or from one client address)
    # within the window lock that reference (or address) out for the lock-out; a correct PIN is refused too
    # until it ends. Stored in the database: it holds across replicas and restarts.
    feedback_pin_failures_per_reference: int = Field(default=5, ge=1)
    feedback_pin_failures_per_client: int = Field(default=20, ge=1)
    feedback_pin_window_seconds: float = Field(default=900, gt=0)
    feedback_pin_lockout_seconds: float = Field(default=900, gt=0)
