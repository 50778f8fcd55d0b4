"""Observability: ``X-Request-ID``, W3C trace context, JSON logs, Prometheus metrics, ``/healthz``, ``/readyz``,
``/metrics``.

Tracing: each HTTP hop continues the caller's ``traceparent`` (or starts a trace) with a span of its own
(``RequestContextMiddleware``); the gateway forwards its span as the services' parent; every log line carries
the ``trace_id``; the outbox puts the current ``traceparent`` into each event (the CloudEvents distributed
tracing extension) and consumers continue it while they apply the event (``continue_trace``), so one trace id
follows a request from the gateway's log to the consumer's. OpenTelemetry export is off unless
``CRP_OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``) is set (``configure_tracing``).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from random import getrandbits as _random_bits
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# The W3C ``traceparent`` of the current span (this process's part of the trace), or None outside any trace.
trace_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("traceparent", default=None)

REQUESTS = Counter("crp_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("crp_http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))

access_log = logging.getLogger("crp.access")

# A caller's X-Request-ID is kept only when it is this safe and this short (it is echoed and logged);
# anything else is replaced by a fresh one.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class _RequestIdFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.service = self.service
        record.trace_id = trace_id(trace_var.get())
        return True


# -- W3C trace context ------------------------------------------------------------------------------
def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid W3C ``traceparent``, else None (parsed by the OpenTelemetry
    API's propagator: version ``ff``, all-zero ids and malformed values are refused)."""
    if not value:
        return None
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = get_current_span(TraceContextTextMapPropagator().extract({"traceparent": value.strip()})
                               ).get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}", f"{int(context.trace_flags):02x}"


def child_traceparent(incoming: str | None) -> str:
    """A span of our own: the caller's trace continued with a new span id, or a new sampled trace."""
    parsed = parse_traceparent(incoming)
    if parsed is None:
        return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
    return f"00-{parsed[0]}-{os.urandom(8).hex()}-{parsed[2]}"


def trace_id(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent and traceparent.count("-") == 3 else None


@contextlib.contextmanager
def continue_trace(incoming: str | None, name: str = "work", **attributes: object) -> Iterator[str | None]:
    """Work done on behalf of ``incoming`` (an event's or a job's ``traceparent``) as a child span of it;
    without one, nothing is traced. Exported when OpenTelemetry is switched on."""
    if parse_traceparent(incoming) is None:
        yield None
        return
    with span(name, incoming, **attributes) as current:
        yield current


@contextlib.contextmanager
def span(name: str, incoming: str | None, **attributes: object) -> Iterator[str]:
    """A span of ours, child of ``incoming`` (or a new trace), as the current ``trace_var`` while it lasts.
    With export on it is an OpenTelemetry span (its ids are then the ones logged and passed on)."""
    with _exported_span(name, incoming, attributes) as exported:
        current = exported or child_traceparent(incoming)
        token = trace_var.set(current)
        try:
            yield current
        finally:
            trace_var.reset(token)


# -- OpenTelemetry export (optional: `pip install 'crp-platform[otel]'`) ------------------------------
_tracer: object | None = None
_provider: object | None = None


def configure_tracing(service: str, endpoint: str | None) -> bool:
    """Export spans over OTLP/HTTP to ``endpoint`` (else ``OTEL_EXPORTER_OTLP_ENDPOINT``); off when neither is
    set. True when export is on."""
    global _tracer, _provider
    endpoint = endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logging.getLogger("crp.tracing").error(
            "OpenTelemetry export asked for (%s) but the SDK is not installed: pip install 'crp-platform[otel]'",
            endpoint)
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": f"crp-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")))
    _tracer, _provider = provider.get_tracer("crp"), provider
    return True


def shutdown_tracing() -> None:
    """Export the spans still buffered and switch export off (at the end of the lifespan)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()  # type: ignore[attr-defined]
    _tracer = _provider = None


@contextlib.contextmanager
def _exported_span(name: str, parent: str | None, attributes: dict[str, object]) -> Iterator[str | None]:
    """An exported OpenTelemetry span (yielding its ``traceparent``) when export is on, else nothing."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": parent} if parent_ok(parent) else {})
    with _tracer.start_as_current_span(name, context=context,  # type: ignore[attr-defined]
                                       attributes={k: str(v) for k, v in attributes.items()}) as otel_span:
        ctx = otel_span.get_span_context()
        yield f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def parent_ok(value: str | None) -> bool:
    return parse_traceparent(value) is not None


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stderr, each with the service and the current request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                       rename_fields={"asctime": "time", "levelname": "level"}))
    handler.addFilter(_RequestIdFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class RequestContextMiddleware:
    """Sets and echoes ``X-Request-ID``, records metrics by route template, writes an access log line."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        # The metric children of each (method, route[, status]), looked up once: labels() takes a lock and
        # builds a key on every call.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def _observe(self, method: str, route: str, status: int, elapsed: float) -> None:
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = REQUESTS.labels(self.service, method, route, str(status))
            self._counters[(method, route, status)] = counter
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = self._histograms[(method, route)] = LATENCY.labels(self.service, method, route)
        counter.inc()
        histogram.observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _header(scope, b"x-request-id")
        if request_id is None or not REQUEST_ID.fullmatch(request_id):
            request_id = f"{_random_bits(128):032x}"  # a correlation id, not a secret: no urandom syscall
        token = request_id_var.set(request_id)
        # This hop's span: the caller's trace (the gateway's span, for a service) continued, or a new one.
        traced = span(f"{scope['method']} {scope.get('path', '')}", _header(scope, b"traceparent"))
        traced.__enter__()
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            self._observe(method, route, status, elapsed)
            # Nothing is built for a line that is not written (CRP_LOG_LEVEL above INFO).
            if route not in ("/healthz", "/metrics") and access_log.isEnabledFor(logging.INFO):
                access_log.info("request", extra={"method": method, "route": route, "status": status,
                                                  "duration_ms": round(elapsed * 1000, 2)})
            request_id_var.reset(token)
            traced.__exit__(None, None, None)


ReadinessCheck = Callable[[], Awaitable[bool]]


def metrics_response() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST


async def run_checks(checks: dict[str, ReadinessCheck]) -> tuple[bool, dict[str, Any]]:
    results: dict[str, Any] = {}
    ok = True
    for name, check in checks.items():
        try:
            passed = await check()
        except Exception:
            passed = False
        results[name] = "ok" if passed else "unavailable"
        ok = ok and passed
    return ok, results
