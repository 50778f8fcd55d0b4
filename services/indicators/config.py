from shared.settings import CommonSettings


class IndicatorsSettings(CommonSettings):
    service_name: str = "indicators"
    consumer_durable: str = "indicators"
    consumer_max_deliver: int = 5
