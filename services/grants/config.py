from pydantic import Field

from shared.settings import CommonSettings


class GrantsSettings(CommonSettings):
    service_name: str = "grants"
    # Business names and monitoring notes of a grant unchanged for this many days are erased by housekeeping
    # (the same setting as the beneficiaries service's); unset keeps them.
    personal_data_retention_days: int | None = Field(default=None, ge=1)
