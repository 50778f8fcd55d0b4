from shared.settings import CommonSettings


class IndicatorsSettings(CommonSettings):
    service_name: str = "indicators"
    consumer_durable: str = "indicators"
    # Attempts at an event on a healthy database before it becomes a dead letter (a database or NATS
    # outage never counts as an attempt).
    consumer_max_attempts: int = 5
    # How long JetStream waits for an ack before redelivering; a held message is kept alive meanwhile.
    consumer_ack_wait_seconds: float = 30.0
