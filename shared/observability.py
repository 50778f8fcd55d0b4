"""Observability: ``X-Request-ID``, JSON logs, Prometheus metrics, ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable
from random import getrandbits as _random_bits
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

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
        return True


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
