"""The service application factory: every service is built the same way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import text

from shared.auth import TokenVerifier
from shared.bus import Bus
from shared.db import create_engine, create_sessionmaker
from shared.errors import install_error_handlers, problem_response
from shared.housekeeping import Housekeeping
from shared.migrations import upgrade
from shared.observability import RequestContextMiddleware, configure_logging, metrics_response, run_checks
from shared.outbox import Outbox, OutboxRelay
from shared.settings import CommonSettings


@dataclass
class ServiceSpec:
    settings: CommonSettings
    title: str
    description: str
    routers: Sequence[APIRouter]
    migrations: Path
    # Extra background work, built once the app state exists (e.g. an event consumer).
    workers: Sequence[Callable[[FastAPI], Any]] = field(default_factory=tuple)
    openapi_tags: list[dict[str, str]] | None = None


def create_service_app(spec: ServiceSpec) -> FastAPI:
    settings = spec.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        engine = create_engine(settings)
        if settings.migrate_on_start:
            await upgrade(engine, settings, spec.migrations)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.bus = bus = Bus(settings)
        app.state.outbox = outbox = Outbox(settings)
        bus.start()
        relay = OutboxRelay(settings, app.state.sessionmaker, bus, outbox)
        relay.start()
        workers = [Housekeeping(settings, app.state.sessionmaker), *(make(app) for make in spec.workers)]
        for worker in workers:
            worker.start()
        try:
            yield
        finally:
            for worker in workers:
                await worker.stop()
            await relay.stop()
            await bus.close()
            await engine.dispose()

    # No redirects: a trailing-slash path is a 404 problem rather than a Location built from the service's
    # own address.
    app = FastAPI(title=spec.title, description=spec.description, version="1.0.0", lifespan=lifespan,
                  openapi_tags=spec.openapi_tags, redirect_slashes=False)
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["ETag", "Link", "X-Request-ID", "Location"])
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    app.include_router(health_router())
    for router in spec.routers:
        app.include_router(router)
    return app


def health_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/readyz", summary="Readiness", responses={503: {"description": "Not ready"}})
    async def readyz(request: Request) -> Any:
        """Ready when the service's database and NATS are reachable."""
        state = request.app.state

        async def database() -> bool:
            async with state.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2)
            return True

        async def nats() -> bool:
            return bool(state.bus.connected)

        ok, checks = await run_checks({"database": database, "nats": nats})
        if ok:
            return {"status": "ready", "checks": checks}
        return problem_response(503, slug="not-ready", detail="A dependency is unavailable", checks=checks)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        body, content_type = metrics_response()
        return Response(body, media_type=content_type)

    return router
