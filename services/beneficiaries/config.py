from pydantic import Field

from shared.settings import CommonSettings


class BeneficiariesSettings(CommonSettings):
    service_name: str = "beneficiaries"
    # Personal data (names, phone, national-ID hash, exact birth date, consent note) of a person whose record
    # has not changed for this many days is erased by housekeeping; unset keeps it (the programme decides).
    personal_data_retention_days: int | None = Field(default=None, ge=1)
    # Bulk imports: rows per transaction of the import worker.
    import_batch_size: int = 500
    # On SQLite (one writer at a time) the import worker pauses this long between batches, so requests and the
    # outbox relay waiting for the database get their turn instead of waiting out the whole import.
    import_pause_seconds: float = 0.15
    # KoboToolbox sources: how often the puller looks for sources due (each has its own interval).
    kobo_poll_seconds: float = 30.0
    # Registrations arriving while another is being written are written together, in one transaction, at most
    # this many (group commit: each still gets its own answer); 1 writes each alone.
    registration_batch_max: int = Field(default=64, ge=1)
