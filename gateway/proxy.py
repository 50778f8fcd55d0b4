"""The streaming reverse proxy: one shared aiohttp client, per-upstream down-marking, problem+json errors.

aiohttp is the client because httpx measured 0.1x of direct throughput here and aiohttp ~0.9-1x
(gateway/README.md). ``auto_decompress=False``: bodies pass through byte for byte with their own
``content-encoding`` and ``content-length``, so nothing has to be recomputed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from prometheus_client import Counter, Histogram
from starlette.types import Receive, Scope, Send
from yarl import URL

from gateway.settings import GatewaySettings
from shared.errors import (
    BadGateway,
    BadRequest,
    GatewayTimeout,
    PayloadTooLarge,
    ServiceUnavailable,
)

log = logging.getLogger("crp.gateway.proxy")

UPSTREAM_RESPONSES = Counter("crp_gateway_upstream_responses_total", "Upstream answers by status (or error)",
                             ["upstream", "status"])
UPSTREAM_LATENCY = Histogram("crp_gateway_upstream_duration_seconds", "Time to the upstream's response headers",
                             ["upstream"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                    1, 2.5, 5, 10, 30))

# RFC 9110 7.6.1 hop-by-hop headers, plus what the gateway sets itself on the way in.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
                        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"})
# X-Forwarded-*: the gateway sets them itself (believing a caller's only from a trusted proxy).
FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix"})
REQUEST_DROP = HOP_BY_HOP | FORWARDED | {"host", "content-length", "expect", "x-request-id", "traceparent",
                                         "x-api-key", "forwarded"}
# On the way out the gateway owns the request id, CORS, the date and the server header.
RESPONSE_DROP = frozenset(name.encode() for name in HOP_BY_HOP | {"date", "server", "x-request-id"})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
BUFFER_BODY_UP_TO = 1024 * 1024      # smaller request bodies are read first (then retries are possible)
SEND_WHOLE_UP_TO = 64 * 1024         # smaller responses are sent in one piece


class _Body:
    """Counts a streamed request body against the limit."""

    def __init__(self, receive: Receive, limit: int, already: bytes = b"") -> None:
        self.receive = receive
        self.limit = limit
        self.first = already
        self.size = len(already)
        self.too_large = False

    async def stream(self) -> AsyncIterator[bytes]:
        if self.first:
            yield self.first
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("client went away")
            chunk = message.get("body", b"")
            self.size += len(chunk)
            if self.size > self.limit:
                self.too_large = True
                raise ConnectionAbortedError("request body too large")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                return


class FairLimit:
    """At most ``size`` holders; the others wait first come first served (no overtaking)."""

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, timeout: float) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed over just as we gave up: pass it on
            else:
                waiter.cancel()
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the longest waiting
                return
        self.free += 1


class Upstream:
    """One service's base URL and whether it is known to be down (fail fast until ``down_until``)."""

    def __init__(self, name: str, url: str, settings: GatewaySettings) -> None:
        self.name = name
        self.base = url.rstrip("/")
        self.settings = settings
        self.failures = 0
        self.down_until = 0.0
        self.latency = UPSTREAM_LATENCY.labels(name)
        size = settings.upstream_connections_per_service
        self.slots = FairLimit(size) if size > 0 else None

    def check(self) -> None:
        remaining = self.down_until - time.monotonic()
        if remaining > 0:
            raise ServiceUnavailable(f"The {self.name} service is down; retry later", service=self.name,
                                     headers={"Retry-After": str(math.ceil(remaining))})

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.settings.down_after_failures:
            self.down_until = time.monotonic() + self.settings.down_seconds
            log.warning("upstream marked down", extra={"upstream": self.name, "failures": self.failures})

    def succeeded(self) -> None:
        self.failures = 0
        self.down_until = 0.0


class Proxy:
    """Forwards a request to an upstream and streams the answer back."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.upstreams = {name: Upstream(name, url, settings) for name, url in settings.upstreams.items()}
        self.session: aiohttp.ClientSession | None = None
        self._responses: dict[tuple[str, str], Any] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.settings.upstream_pool_size, ttl_dns_cache=60,
                                         keepalive_timeout=4)  # under uvicorn's 5 s: never reuse a closing one
        # connect: waiting for a free pooled connection plus connecting; sock_connect: the TCP connect alone.
        timeout = aiohttp.ClientTimeout(total=None, connect=self.settings.read_timeout_seconds,
                                        sock_connect=self.settings.connect_timeout_seconds,
                                        sock_read=self.settings.read_timeout_seconds)
        # skip_auto_headers: the caller's Accept-Encoding (or its absence) must reach the upstream as is.
        # Header lines: room for anything a service derives from an accepted target (a Link repeats the query).
        line = 4 * self.settings.max_target_bytes + 8192
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False, raise_for_status=False,
            max_line_size=line, max_field_size=line,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    def _count(self, upstream: str, status: str) -> None:
        child = self._responses.get((upstream, status))
        if child is None:
            child = self._responses[(upstream, status)] = UPSTREAM_RESPONSES.labels(upstream, status)
        child.inc()

    async def forward(self, scope: Scope, receive: Receive, send: Send, service: str,
                      headers: list[tuple[str, str]]) -> None:
        """Send the request to ``service`` with ``headers`` and relay the response to the client."""
        upstream = self.upstreams.get(service)
        if upstream is None:
            raise ServiceUnavailable(f"The {service} service is not configured", service=service)
        upstream.check()
        if upstream.slots is None:
            await self._exchange(scope, receive, send, upstream, headers)
            return
        try:
            await upstream.slots.acquire(self.settings.read_timeout_seconds)
        except TimeoutError:
            self._count(service, "queued-too-long")
            raise GatewayTimeout(f"The {service} service is busy; no turn came in time", service=service) from None
        try:
            await self._exchange(scope, receive, send, upstream, headers)
        finally:
            upstream.slots.release()

    async def _exchange(self, scope: Scope, receive: Receive, send: Send, upstream: Upstream,
                        headers: list[tuple[str, str]]) -> None:
        service = upstream.name
        assert self.session is not None
        method = scope["method"]
        body, data = await self._request_body(scope, receive, headers)
        query = scope.get("query_string", b"")
        target = upstream.base + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if query:
            target += "?" + query.decode("latin-1")
        url = URL(target, encoded=True)
        retries = self.settings.idempotent_retries if method in IDEMPOTENT and body is None else 0

        started = time.perf_counter()
        attempt = 0
        while True:
            try:
                response = await self.session.request(method, url, headers=headers, data=data,
                                                      allow_redirects=False, compress=None)
                break
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
                if body is not None and body.too_large:
                    raise self._too_large() from None
                refused = isinstance(exc, aiohttp.ClientConnectorError)
                if refused:
                    upstream.failed()
                # Nothing reached the service (refused), or a kept-alive connection it had just closed.
                if attempt < retries and upstream.down_until <= time.monotonic():
                    attempt += 1
                    continue
                self._count(service, "unreachable" if refused else "disconnected")
                if refused:
                    raise ServiceUnavailable(f"The {service} service is not reachable", service=service) from None
                raise BadGateway(f"The {service} service closed the connection", service=service) from None
            except aiohttp.ConnectionTimeoutError:  # no connection in time: busy, not necessarily down
                self._count(service, "timeout")
                raise GatewayTimeout(f"The {service} service did not accept the connection in time",
                                     service=service) from None
            except (aiohttp.ServerTimeoutError, TimeoutError):
                self._count(service, "timeout")
                raise GatewayTimeout(f"The {service} service did not answer in time", service=service) from None
            except aiohttp.ClientError as exc:
                if body is not None and body.too_large:
                    raise self._too_large() from None
                self._count(service, "error")
                # The class only: aiohttp's messages can quote the request or response headers (tokens).
                log.warning("upstream error", extra={"upstream": service, "error": type(exc).__name__})
                raise BadGateway(f"The {service} service gave an invalid response", service=service) from None
        upstream.succeeded()
        upstream.latency.observe(time.perf_counter() - started)
        self._count(service, str(response.status))
        try:
            await self._relay(response, send, service)
        finally:
            response.release()

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than {self.settings.max_body_bytes} bytes",
                               max_bytes=self.settings.max_body_bytes)

    async def _request_body(self, scope: Scope, receive: Receive,
                            headers: list[tuple[str, str]]) -> tuple[_Body | None, Any]:
        """(streamed body or None, what to hand aiohttp as ``data``)."""
        limit = self.settings.max_body_bytes
        length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise BadRequest("Content-Length is not a number") from None
            elif name == b"transfer-encoding":
                chunked = True
        if length is not None and length > limit:
            raise self._too_large()
        if length is None and not chunked:
            return None, None
        if length is not None and length <= BUFFER_BODY_UP_TO:
            chunks = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":  # nobody will read the answer; no trace in the log
                    raise BadRequest("The client closed the connection before sending the whole body")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise self._too_large()
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            return None, b"".join(chunks)
        body = _Body(receive, limit)
        if length is not None:
            headers.append(("Content-Length", str(length)))
        return body, body.stream()

    async def _relay(self, response: aiohttp.ClientResponse, send: Send, service: str) -> None:
        drop = RESPONSE_DROP
        connection = response.headers.get("Connection")
        if connection:
            drop = drop | {token.strip().lower().encode() for token in connection.split(",")}
        headers = [(name.lower(), value) for name, value in response.raw_headers
                   if name.lower() not in drop and not name.lower().startswith(b"access-control-")]
        length = response.content_length
        if length is not None and length <= SEND_WHOLE_UP_TO:
            try:
                content = await response.read()
            except (aiohttp.ServerTimeoutError, TimeoutError):
                raise GatewayTimeout(f"The {service} service did not finish its answer in time",
                                     service=service) from None
            except aiohttp.ClientError:
                raise BadGateway(f"The {service} service broke off its answer", service=service) from None
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": content})
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        try:
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (TimeoutError, aiohttp.ClientError) as exc:
            # The status line is gone already: all that is left is to cut the connection.
            log.warning("upstream broke off a streamed answer",
                        extra={"upstream": service, "error": type(exc).__name__})
            raise
        await send({"type": "http.response.body", "body": b""})
