from shared.settings import CommonSettings


class BeneficiariesSettings(CommonSettings):
    service_name: str = "beneficiaries"
