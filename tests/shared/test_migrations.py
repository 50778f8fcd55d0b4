"""Each service's migrations produce exactly its models: no table, column, index or constraint only on one side."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from gateway.models import GATEWAY_TABLES
from gateway.settings import GatewaySettings
from shared import catalog
from shared.db import create_engine
from shared.migrations import metadata_of, upgrade
from shared.settings import CommonSettings
from tests.conftest import Env


async def _differences(settings: CommonSettings, metadata: MetaData, migrate: Any) -> list[Any]:
    engine = create_engine(settings)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            def compare(sync_conn: Any) -> list[Any]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return [d for d in compare_metadata(context, metadata) if not _is_alembic_version(d)]
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


def _is_alembic_version(diff: Any) -> bool:
    return diff[0] == "remove_table" and diff[1].name == "alembic_version"


@pytest.mark.parametrize("name", catalog.built())
async def test_a_services_migrations_produce_exactly_its_models(env: Env, name: str) -> None:
    service = catalog.load(name)
    settings = env.settings(service.settings, name=name)
    differences = await _differences(settings, service.metadata(), lambda engine: service.migrate(engine, settings))
    assert differences == []


async def test_the_gateways_migrations_produce_exactly_its_models(env: Env) -> None:
    from gateway.app import MIGRATIONS

    settings = env.settings(GatewaySettings)
    metadata = metadata_of(*GATEWAY_TABLES)
    assert await _differences(settings, metadata, lambda engine: upgrade(engine, settings, MIGRATIONS, metadata)) == []
