from shared.settings import CommonSettings


class BeneficiariesSettings(CommonSettings):
    service_name: str = "beneficiaries"
    # Bulk imports: rows per transaction of the import worker.
    import_batch_size: int = 500
