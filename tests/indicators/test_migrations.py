"""The indicators migrations bring a database made by an older version up to date."""

from __future__ import annotations

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from services.indicators.app import service
from services.indicators.config import IndicatorsSettings
from shared.db import create_engine
from shared.migrations import alembic_config
from tests.conftest import Env


async def test_parked_events_table_reaches_a_database_made_before_it(env: Env) -> None:
    settings = env.settings(IndicatorsSettings)
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            if settings.schema:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{settings.schema}"'))
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(service.versions, connection=sync), "0001"))
            # As 0001 left it before create_consumer_tables grew the table.
            await conn.execute(text("DROP TABLE parked_events"))
        await service.migrate(engine, settings)
        await service.migrate(engine, settings)  # idempotent
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        head = ScriptDirectory.from_config(alembic_config(service.versions)).get_current_head()
        assert {"parked_events", "grant_disbursements", "training_enrolments"} <= set(tables) and version == head
    finally:
        await engine.dispose()
