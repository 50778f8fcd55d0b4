"""``/metrics`` of the indicators service shows its consumer's lag: the stream's last sequence minus the
consumer's acknowledged floor. The lag is made real by holding the projection's database while events arrive
(a write lock on SQLite, a table lock on PostgreSQL): the consumer waits, the stream moves on."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from services.indicators.app import create_app
from services.indicators.config import IndicatorsSettings
from shared.events.beneficiaries import BeneficiaryRegistered
from tests.conftest import POSTGRES_URL, Env, eventually, running
from tests.pipeline.test_outbox_consumer import publish_raw, registered_event


async def _gauges(client: Any) -> dict[str, float]:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    found = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            if sample.name.startswith("crp_consumer_") and sample.labels.get("consumer") == "indicators":
                found[sample.name] = sample.value
    return found


@asynccontextmanager
async def _database_held(settings: IndicatorsSettings) -> AsyncIterator[None]:
    """Hold the indicators database so that the consumer cannot settle an event until the block ends."""
    if settings.is_sqlite:
        path = settings.database_url.split(":///", 1)[1]
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # the write lock: the consumer's BEGIN IMMEDIATE waits for it
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute(f'LOCK TABLE "{settings.schema}".processed_events IN ACCESS EXCLUSIVE MODE')
        try:
            yield
        finally:
            await tx.rollback()
    finally:
        await conn.close()


async def test_metrics_show_consumer_lag(env: Env) -> None:
    settings = env.settings(IndicatorsSettings)
    app = create_app(settings)
    officer = env.token("me_officer")
    subject = BeneficiaryRegistered.subject(env.prefix)

    async def registered(client: Any) -> int:
        return (await client.get("/api/v1/indicators/summary", headers=officer)).json()["beneficiaries_registered"]

    async with running(app) as client:
        await app.state.bus.wait_ready(10)
        for _ in range(3):
            await publish_raw(env.nats_url, subject, registered_event())

        async def caught_up(sequence: int) -> dict[str, float] | None:
            gauges = await _gauges(client)
            expected = {"crp_consumer_stream_sequence": sequence, "crp_consumer_applied_sequence": sequence,
                        "crp_consumer_lag_events": 0}
            return gauges if gauges == expected else None

        await eventually(lambda: caught_up(3))
        assert await registered(client) == 3

        async with _database_held(settings):
            for _ in range(2):
                await publish_raw(env.nats_url, subject, registered_event())

            async def stream_moved() -> dict[str, float] | None:
                gauges = await _gauges(client)
                return gauges if gauges.get("crp_consumer_stream_sequence") == 5 else None

            # The consumer cannot settle anything while the database is held: its floor stays at 3.
            assert await eventually(stream_moved) == {"crp_consumer_stream_sequence": 5,
                                                      "crp_consumer_applied_sequence": 3,
                                                      "crp_consumer_lag_events": 2}

        await eventually(lambda: caught_up(5), timeout=40)  # SQLite's busy wait may end only after its timeout
        assert await registered(client) == 5
