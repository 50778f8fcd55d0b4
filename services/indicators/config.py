from shared.settings import CommonSettings


class IndicatorsSettings(CommonSettings):
    service_name: str = "indicators"
