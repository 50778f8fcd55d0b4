from pydantic import Field

from shared.settings import CommonSettings


class BeneficiariesSettings(CommonSettings):
    service_name: str = "beneficiaries"
    # Personal data (names, phone, national-ID hash, exact birth date, consent note) of a person whose record
    # has not changed for this many days is erased by housekeeping; unset keeps it (the programme decides).
    personal_data_retention_days: int | None = Field(default=None, ge=1)
