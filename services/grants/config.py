from shared.settings import CommonSettings


class GrantsSettings(CommonSettings):
    service_name: str = "grants"
