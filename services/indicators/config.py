from datetime import date

from pydantic import Field

from shared.settings import CommonSettings


class IndicatorsSettings(CommonSettings):
    service_name: str = "indicators"
    # `crp indicators rebuild`: no progress from NATS for this long is an error (nothing is swapped);
    # the stream is read this many events at a time (unset: 5000 in memory, 200 through the live handlers,
    # where the aside is committed every batch). In memory (the default), the whole projection is folded in
    # memory (about 1 KB per person, act of assistance or other record) and written aside in bulk at the end:
    # tens of times faster.
    rebuild_stall_seconds: float = 30.0
    rebuild_batch_size: int | None = None
    rebuild_in_memory: bool = True
    # The IATI results export (`/api/v1/indicators/export.iati.xml`): the activity, its reporting organisation
    # (IATI organisation identifier and OrganisationType code; 40 = multilateral) and the programme's start,
    # the start of the reported period.
    iati_activity_identifier: str = "XM-DAC-47066-CRP-IRQ"
    iati_reporting_org_ref: str = "XM-DAC-47066"
    iati_reporting_org_name: str = "International Organization for Migration (IOM)"
    iati_reporting_org_type: str = "40"
    programme_start: date = date(2026, 1, 1)
    # Public outputs: cells under this many people are suppressed (with complementary cells).
    public_suppression_threshold: int = Field(default=5, ge=2)

    # Outbound webhooks: per-attempt timeout; attempts before a delivery is `failed` (a re-delivery by hand
    # starts again); the retry backoff (base * 2^(attempt-1), capped); failed attempts in a row after which
    # a subscription is disabled until an admin re-enables it.
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 10
    webhook_retry_base_seconds: float = 5.0
    webhook_retry_max_seconds: float = 3600.0
    webhook_disable_after_failures: int = 20
