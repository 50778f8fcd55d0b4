from shared.settings import CommonSettings


class TrainingSettings(CommonSettings):
    service_name: str = "training"
