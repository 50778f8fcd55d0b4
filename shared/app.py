"""The service application factory: every service is built the same way."""

from __future__ import annotations

import gc
import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from shared.auth import TokenVerifier, roles_of
from shared.bus import Bus
from shared.consumer import CONSUMER_TABLES, EventApplier, EventConsumer, Handler
from shared.db import Reads, create_engine, create_sessionmaker, database_answers
from shared.docs import install_docs
from shared.errors import install_error_handlers, problem_response
from shared.housekeeping import Housekeeping
from shared.idempotency import IdempotencyRecord
from shared.migrations import metadata_of, upgrade
from shared.observability import (
    RequestContextMiddleware,
    configure_logging,
    configure_tracing,
    metrics_response,
    run_checks,
    shutdown_tracing,
)
from shared.openapi import install as install_openapi
from shared.openapi import operation_id
from shared.outbox import Outbox, OutboxMessage, OutboxRelay
from shared.peers import http_client
from shared.schemas import check_request
from shared.settings import CommonSettings
from shared.worker import BackgroundWorker

COMMON_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid token (problem+json)"},
    403: {"description": "Your role does not allow this (problem+json)"},
    422: {"description": "Invalid input (problem+json with `errors`)"},
}
"""Documented on every route of every service (OpenAPI)."""


@dataclass(frozen=True)
class Service:
    """A service, declared once in its package (``service = Service(...)`` in ``services/<name>/app.py``).

    Everything else follows from the declaration and the service list (``shared.catalog``): its
    settings and database, its migrations (``services/<name>/migrations/versions``, run by the one
    Alembic environment), the outbox and its relay, housekeeping, health and metrics routes, the
    problem+json handlers, and, when it has ``handlers``, a durable consumer of the event stream.
    """

    name: str
    title: str
    description: str
    routers: Sequence[APIRouter]
    tables: Sequence[type[SQLModel]]  # its own tables; the outbox and idempotency-key tables come with it
    settings: type[CommonSettings] = CommonSettings
    handlers: Mapping[str, Handler] | None = None  # event type -> handler: the service consumes the stream
    # The service's own background workers (e.g. the beneficiaries' import jobs), started in its lifespan.
    workers: Sequence[Callable[[FastAPI, CommonSettings], BackgroundWorker]] = ()
    openapi_tags: list[dict[str, str]] | None = None
    # Run by housekeeping after its own purge, in the same transaction (e.g. a personal-data retention).
    housekeeping: Callable[[Any, CommonSettings], Awaitable[int]] | None = None

    @property
    def versions(self) -> Path:
        """Where this service's Alembic revisions live."""
        spec = importlib.util.find_spec(f"services.{self.name}")
        assert spec is not None and spec.submodule_search_locations, f"no package services.{self.name}"
        return Path(spec.submodule_search_locations[0]) / "migrations" / "versions"

    def metadata(self) -> MetaData:
        """The tables this service's migrations must produce (compared with them in the tests)."""
        tables = [*self.tables, OutboxMessage, IdempotencyRecord]
        if self.handlers is not None:
            tables += CONSUMER_TABLES
        return metadata_of(*tables)

    def make_settings(self, **values: Any) -> CommonSettings:
        """This service's settings from the environment (``values`` override it)."""
        return self.settings(**{"service_name": self.name, **values})

    async def migrate(self, engine: AsyncEngine, settings: CommonSettings) -> None:
        await upgrade(engine, settings, self.versions, self.metadata())

    def applier(self) -> EventApplier:
        return EventApplier(self.name, self.handlers or {})

    def create_app(self, settings: CommonSettings | None = None) -> FastAPI:
        """The ASGI app (``uvicorn --factory services.<name>.app:create_app``)."""
        settings = settings or self.make_settings()
        workers: list[Callable[[FastAPI], BackgroundWorker]] = [
            (lambda app, make=make: make(app, settings)) for make in self.workers]
        applier = self.applier()
        if self.handlers is not None:
            def consumer(app: FastAPI) -> EventConsumer:
                worker = EventConsumer(
                    settings, app.state.sessionmaker, app.state.bus, applier,
                    durable=settings.consumer_durable or self.name, max_attempts=settings.consumer_max_attempts,
                    ack_wait=settings.consumer_ack_wait_seconds)
                app.state.metrics_hooks.append(worker.refresh_lag)  # /metrics shows its lag
                return worker

            workers.append(consumer)
        app = create_service_app(self, settings, workers)
        app.state.applier = applier
        return app


def create_service_app(service: Service, settings: CommonSettings,
                       workers: Sequence[Callable[[FastAPI], BackgroundWorker]] = ()) -> FastAPI:

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        configure_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
        engine = create_engine(settings)
        if settings.migrate_on_start:
            await service.migrate(engine, settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.reads = Reads(engine, settings)
        app.state.http = http = http_client()  # for peers (shared.peers)
        app.state.metrics_hooks = []  # coroutines that refresh gauges when /metrics is scraped
        app.state.bus = bus = Bus(settings)
        app.state.outbox = outbox = Outbox(settings)
        bus.start()
        relay = OutboxRelay(settings, app.state.sessionmaker, bus, outbox)
        relay.start()
        running = [Housekeeping(settings, app.state.sessionmaker, service.housekeeping),
                   *(make(app) for make in workers)]
        for worker in running:
            worker.start()
        # Everything alive now lives as long as the process: keep it out of the collector's full passes, which
        # otherwise stall every request for tens of ms (as in the gateway: GET by id at 50 clients, p99 70 -> 25 ms).
        # No full collection first (the gateway's one start can afford it): it cost a test run an app start each.
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()  # an app stopped in a longer-lived process (tests, the CLI) leaves nothing uncollectable
            for worker in running:
                await worker.stop()
            await relay.stop()
            await bus.close()
            await app.state.reads.aclose()
            await engine.dispose()
            await http.aclose()
            shutdown_tracing()

    # No redirects: a trailing-slash path is a 404 problem rather than a Location built from the service's
    # own address.
    app = FastAPI(title=service.title, description=service.description, version="1.0.0", lifespan=lifespan,
                  openapi_tags=service.openapi_tags,
                  dependencies=[Depends(check_request)],
                  redirect_slashes=False, generate_unique_id_function=operation_id, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["ETag", "Link", "X-Request-ID", "Location"])
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)
    app.include_router(health_router())
    for router in service.routers:
        app.include_router(router, responses=COMMON_PROBLEMS)
    install_openapi(app, service.routers)
    document_roles(app, service.routers)
    install_docs(app, title=service.title)
    return app


def document_roles(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Add ``x-roles`` (``shared.auth.roles_of``) to every operation that needs a token in the app's OpenAPI."""
    from fastapi.routing import APIRoute

    roles = {(route.path_format, method.lower()): found for router in routers for route in router.routes
             if isinstance(route, APIRoute) and (found := roles_of(route.dependant)) is not None
             for method in route.methods}
    build = app.openapi

    def openapi() -> dict[str, Any]:
        spec = build()
        for (path, method), allowed in roles.items():
            if (operation := spec.get("paths", {}).get(path, {}).get(method)) is not None:
                operation["x-roles"] = allowed
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


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
            return await database_answers(state.engine, timeout=2)

        async def nats() -> bool:
            return bool(state.bus.connected)

        ok, checks = await run_checks({"database": database, "nats": nats})
        if ok:
            return {"status": "ready", "checks": checks}
        return problem_response(503, slug="not-ready", detail="A dependency is unavailable", checks=checks)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus text: request counts and latencies, events applied, and for a consuming service its lag
        (`crp_consumer_lag_events`: the stream's last sequence minus the consumer's acknowledged floor)."""
        for refresh in getattr(request.app.state, "metrics_hooks", ()):
            await refresh()
        body, content_type = metrics_response()
        return Response(body, media_type=content_type)

    return router
