from pydantic import Field

from shared.settings import CommonSettings


class IndicatorsSettings(CommonSettings):
    service_name: str = "indicators"
    # `crp indicators rebuild`: no progress from NATS for this long is an error (nothing is swapped);
    # the aside projection is committed every this many events.
    rebuild_stall_seconds: float = 30.0
    rebuild_batch_size: int = 200
    # Public outputs: cells under this many people are suppressed (with complementary cells).
    public_suppression_threshold: int = Field(default=5, ge=2)
