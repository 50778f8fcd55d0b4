from shared.settings import CommonSettings


class InfrastructureSettings(CommonSettings):
    service_name: str = "infrastructure"
