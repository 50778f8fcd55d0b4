"""The gateway application: the edge (auth, limits, proxy) in front of every service, and its own routes.

Request path through the gateway, outermost first: request id + metrics + access log
(``shared.observability``), security headers, CORS, then either a proxy route (one per prefix of the
routing table, matched before anything else) or one of the gateway's own routes.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from fastapi import Depends, FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from yarl import URL

from gateway import apikeys, dashboard
from gateway.auth import ApiKeyStore, BearerCache, SigningKey
from gateway.limits import RateLimiter, SharedRateLimiter
from gateway.models import GATEWAY_TABLES
from gateway.openapi import MergedOpenAPI
from gateway.proxy import FORWARDED, REQUEST_DROP, Proxy
from gateway.settings import PUBLIC_PREFIX, GatewaySettings
from shared.auth import Principal, TokenVerifier, bearer_token, single_authorization
from shared.db import create_engine, create_sessionmaker, database_answers
from shared.docs import install_docs
from shared.errors import BadRequest, PayloadTooLarge, Unauthorized, install_error_handlers, problem_response
from shared.migrations import metadata_of, upgrade
from shared.observability import (
    RequestContextMiddleware,
    child_traceparent,
    configure_logging,
    configure_tracing,
    metrics_response,
    request_id_var,
    shutdown_tracing,
    trace_var,
)
from shared.openapi import install as install_openapi
from shared.openapi import operation_id
from shared.schemas import require_json_body
from shared.settings import CommonSettings
from shared.urls import client_address, is_trusted_proxy, public_base

MIGRATIONS = Path(__file__).parent / "migrations" / "versions"


async def migrate_gateway(engine: AsyncEngine, settings: CommonSettings) -> None:
    """Bring the gateway's database to its newest revision (at start-up, or `crp migrate`)."""
    await upgrade(engine, settings, MIGRATIONS, metadata_of(*GATEWAY_TABLES))


class Edge:
    """Authenticates, rate-limits and forwards one proxied request."""

    def __init__(self, settings: GatewaySettings, proxy: Proxy, bearer: BearerCache, limiter: RateLimiter) -> None:
        self.settings = settings
        self.proxy = proxy
        self.bearer = bearer
        self.limiter = limiter
        self.api_keys: ApiKeyStore | None = None  # set once the database is up

    def client_ip(self, scope: Scope, forwarded_for: str | None) -> str:
        """The caller's address: the direct peer's, or, when that peer is a trusted proxy, the last address
        it appended to ``X-Forwarded-For``."""
        return client_address(self.settings, scope["client"][0] if scope.get("client") else None, forwarded_for)

    async def admit(self, client_ip: str, authorization: str | None, api_key: str | None
                    ) -> tuple[Principal, str | None]:
        """(principal, token minted for an API key or None), after the rate limit; else 401 or 429."""
        try:
            if api_key is not None:
                assert self.api_keys is not None
                if not self.api_keys.is_cached(api_key):
                    await self.limiter.check(f"ip:{client_ip}")  # see below
                principal, token = await self.api_keys.authenticate(api_key)
            else:
                bearer = bearer_token(authorization)
                if not self.bearer.is_cached(bearer):
                    # An address that keeps failing is refused before any look-up: a flood of made-up
                    # credentials must not reach the database or the key fetches (it starved /readyz).
                    await self.limiter.check(f"ip:{client_ip}")
                principal, token = await self.bearer.verify(bearer), None
        except Unauthorized:
            await self.limiter.hit(f"ip:{client_ip}")  # guessing credentials costs the caller's address
            raise
        await self.limiter.hit(f"sub:{principal.sub}")
        return principal, token

    async def handle(self, scope: Scope, receive: Receive, send: Send, route: ProxyRoute) -> None:
        headers: list[tuple[str, str]] = []
        authorization: list[str] = []
        api_key: list[str] = []
        forwarded: dict[str, str] = {}
        traceparent = host = connection = None
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            if name in REQUEST_DROP:
                if name == "x-api-key":
                    api_key.append(value)
                elif name == "traceparent":
                    traceparent = value
                elif name in FORWARDED:
                    forwarded[name] = f"{forwarded[name]}, {value}" if name in forwarded else value
                elif name == "host":
                    host = value
                elif name == "connection":
                    connection = value
                continue
            if name == "authorization":
                authorization.append(value)
            headers.append((name, value))
        if len(api_key) > 1:
            raise BadRequest("More than one X-API-Key header", slug="ambiguous-credentials")
        if connection:  # headers the client named in Connection are hop-by-hop too
            listed = {token.strip().lower() for token in connection.split(",")}
            headers = [(n, v) for n, v in headers if n not in listed]

        client_ip = self.client_ip(scope, forwarded.get("x-forwarded-for"))
        if route.public:
            await self.limiter.hit(f"ip:{client_ip}")
        else:
            _, token = await self.admit(client_ip, single_authorization(authorization),
                                        api_key[0] if api_key else None)
            if token is not None:  # the services verify bearer tokens: the key becomes a token of its own
                headers = [(n, v) for n, v in headers if n != "authorization"]
                headers.append(("authorization", f"Bearer {token}"))

        headers.append(("x-request-id", request_id_var.get() or uuid.uuid4().hex))
        # The gateway's own span (RequestContextMiddleware, in its log lines) is the services' parent.
        headers.append(("traceparent", trace_var.get() or child_traceparent(traceparent)))
        peer = scope["client"][0] if scope.get("client") else None
        chain = forwarded.get("x-forwarded-for") if is_trusted_proxy(self.settings, peer) else None
        headers.append(("x-forwarded-for", f"{chain}, {peer}" if chain else (peer or client_ip)))
        # Where the caller reached us, so that the services build their absolute URLs (Link) from it.
        base = URL(public_base(self.settings, scope.get("scheme", "http"), host, peer, forwarded))
        headers.append(("x-forwarded-proto", base.scheme))
        headers.append(("x-forwarded-host", base.raw_authority))
        if base.raw_path.rstrip("/"):
            headers.append(("x-forwarded-prefix", base.raw_path.rstrip("/")))
        await self.proxy.forward(scope, receive, send, route.service, headers)


class ProxyRoute(BaseRoute):
    """Everything at or under one prefix of the routing table goes to its service."""

    def __init__(self, prefix: str, service: str, edge: Edge) -> None:
        self.path = self.path_format = prefix  # the metrics' route label
        self.service = service
        self.edge = edge
        self.public = (prefix + "/").startswith(PUBLIC_PREFIX)
        self.name = f"proxy:{service}:{prefix}"

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith(self.path) and (len(path) == len(self.path) or path[len(self.path)] == "/"):
                return Match.FULL, {"route": self}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.edge.handle(scope, receive, send, self)


class TargetLimitMiddleware:
    """Refuses request targets (path and query) longer than ``CRP_MAX_TARGET_BYTES`` with a 414 problem."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (len(scope.get("raw_path") or scope["path"].encode())
                                        + len(scope.get("query_string", b"")) > self.max_bytes):
            response = problem_response(414, slug="uri-too-long", max_bytes=self.max_bytes,
                                        detail=f"The request target is longer than {self.max_bytes} bytes")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds the usual protective headers to every response that does not set them itself."""

    def __init__(self, app: ASGIApp, hsts_seconds: int) -> None:
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"strict-transport-security", f"max-age={hsts_seconds}; includeSubDomains".encode()),
            (b"cross-origin-resource-policy", b"same-site"),
        ]
        self.csp = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The docs page sets its own policy (Swagger UI from this origin: shared/docs.py).
        extra = self.headers if scope["path"] == "/docs" else [*self.headers, self.csp]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as problem+json (403) instead of plain text."""

    def preflight_response(self, request_headers: Any) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 400:
            return problem_response(403, slug="cors-refused", detail=bytes(response.body).decode())
        return response


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    routes = settings.route_table()
    proxy = Proxy(settings)
    verifier = TokenVerifier(settings)
    key = settings.gateway_signing_key.get_secret_value() if settings.gateway_signing_key else None
    signer = SigningKey(key or None)
    edge = Edge(settings, proxy, BearerCache(verifier), RateLimiter(settings.rate_limit_per_second,
                                                                    settings.rate_limit_burst))
    merged_openapi = MergedOpenAPI(list(settings.routes), settings.upstreams, routes, settings.openapi_cache_seconds,
                                   settings.readiness_timeout_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level)
        configure_tracing(settings.service_name, settings.otel_exporter_otlp_endpoint)
        engine = create_engine(settings)
        if settings.migrate_on_start:
            await migrate_gateway(engine, settings)
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker = create_sessionmaker(engine)
        app.state.api_keys = edge.api_keys = ApiKeyStore(settings, sessionmaker, signer)
        if settings.shared_rate_limits:  # every replica takes from the same buckets
            edge.limiter = SharedRateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst, engine)
        await proxy.start()
        # Everything alive now lives as long as the process: keep it out of the collector's full
        # passes, which otherwise stall every request for tens of ms (p99, gateway/README.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await proxy.close()
            await engine.dispose()
            shutdown_tracing()

    app = FastAPI(
        title="CRP platform API",
        description="Community revitalization programmes: beneficiaries, grants, training, infrastructure, "
                    "feedback and indicators, behind one gateway. Send `Authorization: Bearer <JWT>` "
                    "(or a partner's `X-API-Key`) on every `/api/v1` path except `/api/v1/public/...`.",
        version="1.0.0", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None,
        redirect_slashes=False,  # no redirects from the edge: a Location would follow the caller's Host
        generate_unique_id_function=operation_id,
        # The gateway passes W3C traceparent on itself; FastAPI's own OpenTelemetry hook would look up
        # the global providers (environment variables) on every request for nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.verifier = verifier
    app.state.proxy = proxy
    app.state.edge = edge
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(ProblemCORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], max_age=600,
                           expose_headers=["ETag", "Link", "X-Request-ID", "Location", "Retry-After"])
    app.add_middleware(TargetLimitMiddleware, max_bytes=settings.max_target_bytes)
    app.add_middleware(SecurityHeadersMiddleware, hsts_seconds=settings.hsts_seconds)
    app.add_middleware(RequestContextMiddleware, service=settings.service_name)

    async def rate_limited(request: Request) -> None:
        """The gateway's own routes count against the caller's rate limit like proxied ones."""
        scope = request.scope
        ip = edge.client_ip(scope, request.headers.get("x-forwarded-for"))
        await edge.admit(ip, single_authorization(request.headers.getlist("authorization")), None)

    async def body_within_limit(request: Request) -> None:
        """The gateway's own routes refuse a body over ``max_body_bytes`` like proxied ones (413)."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            raise PayloadTooLarge(f"The request body is larger than {settings.max_body_bytes} bytes",
                                  max_bytes=settings.max_body_bytes)

    app.include_router(apikeys.router, dependencies=[Depends(body_within_limit), Depends(rate_limited),
                                                     Depends(require_json_body)])

    async def public_rate_limited(request: Request) -> None:
        """The dashboard's files count against the caller's address like public API paths."""
        edge.limiter.hit(f"ip:{edge.client_ip(request.scope, request.headers.get('x-forwarded-for'))}")

    app.include_router(dashboard.router, dependencies=[Depends(public_rate_limited)])

    @app.get("/.well-known/jwks.json", tags=["gateway"], summary="The gateway's signing keys",
             response_class=Response)
    async def jwks() -> Response:
        """The public keys (JWKS) of the tokens the gateway mints for API key callers (ES256, issuer
        `crp-gateway`). Services verify those tokens against it."""
        return Response(signer.jwks, media_type="application/json")

    @app.get("/.well-known/crp-revocations.json", tags=["gateway"], summary="Revoked API keys",
             response_class=Response)
    async def revocations(request: Request) -> Response:
        """`{"api_keys": {"<key id>": <unix time>}}`: a token minted for that key at or before that time no
        longer holds (the key was revoked or rotated then). Services re-read it every few seconds."""
        return Response(await request.app.state.api_keys.revocations(), media_type="application/json",
                        headers={"Cache-Control": "no-store"})

    @app.get("/healthz", tags=["gateway"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        """The gateway process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["gateway"], summary="Readiness", responses={503: {"description": "Not ready"}})
    async def readyz(request: Request) -> Any:
        """Ready when the gateway's database answers and every service's own `/readyz` says ready.
        `checks` has one line per service."""
        session = proxy.session
        assert session is not None
        timeout = aiohttp.ClientTimeout(total=settings.readiness_timeout_seconds)

        async def database() -> str:
            return "ok" if await database_answers(request.app.state.engine) else "unavailable"

        async def service(name: str) -> str:
            url = settings.upstreams.get(name)
            if url is None:
                return "not configured"
            async with session.get(f"{url.rstrip('/')}/readyz", timeout=timeout) as response:
                return "ok" if response.status == 200 else f"not ready ({response.status})"

        names = list(settings.routes)
        jobs = [asyncio.wait_for(database(), settings.readiness_timeout_seconds), *map(service, names)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        checks = {name: result if isinstance(result, str) else "unavailable"
                  for name, result in zip(["database", *names], results, strict=True)}
        # A service that is not configured is not part of this deployment: it answers 503, but it does
        # not keep the gateway out of rotation. One that is configured and down does.
        if all(value in ("ok", "not configured") for value in checks.values()):
            return {"status": "ready", "checks": checks}
        return problem_response(503, slug="not-ready", detail="A service or the database is unavailable",
                                checks=checks)

    @app.get("/metrics", tags=["gateway"], summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        """Per-route latency histograms (`crp_http_request_duration_seconds`, route = the prefix) and
        upstream answers by status (`crp_gateway_upstream_responses_total`)."""
        body, content_type = metrics_response()
        return Response(body, media_type=content_type)

    @app.get("/openapi.json", tags=["gateway"], summary="OpenAPI document", response_class=Response)
    async def openapi() -> Response:
        """The whole platform's API: the gateway's own routes and every reachable service's, one tag
        per service. Services that did not answer are listed in `x-crp-unavailable-services`."""
        assert proxy.session is not None
        body = await merged_openapi.document(proxy.session, app.openapi())
        return Response(body, media_type="application/json")

    install_docs(app, title="CRP platform API")

    install_openapi(app, [apikeys.router])
    # Proxy routes first: a prefix check is cheaper than the regexes of the gateway's own routes.
    app.router.routes[:0] = [ProxyRoute(prefix, service, edge) for prefix, service in routes]
    return app
