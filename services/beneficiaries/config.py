from shared.settings import CommonSettings


class BeneficiariesSettings(CommonSettings):
    service_name: str = "beneficiaries"
    # Bulk imports: rows per transaction of the import worker.
    import_batch_size: int = 500
    # KoboToolbox sources: how often the puller looks for sources due (each has its own interval).
    kobo_poll_seconds: float = 30.0
