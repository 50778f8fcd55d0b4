"""W3C trace context: parsing, the spans of a request and of an event, and OpenTelemetry export to a real
OTLP/HTTP receiver (when the `otel` extra is installed)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from services.beneficiaries.app import create_app
from services.beneficiaries.config import BeneficiariesSettings
from shared.events import CloudEvent
from shared.observability import child_traceparent, continue_trace, parse_traceparent, trace_var
from shared.outbox import OutboxMessage
from tests.beneficiaries.test_api import community, person
from tests.conftest import Env, running

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_parse_and_continue() -> None:
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-01") == (TRACE, PARENT, "01")
    for bad in (None, "", "junk", f"ff-{TRACE}-{PARENT}-01", f"00-{'0' * 32}-{PARENT}-01",
                f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE[:-1]}x-{PARENT}-01"):
        assert parse_traceparent(bad) is None, bad
    child = child_traceparent(f"00-{TRACE}-{PARENT}-01").split("-")
    assert child[1] == TRACE and child[2] != PARENT and child[3] == "01"
    assert child_traceparent("junk").split("-")[1] != TRACE
    with continue_trace(None) as nothing:
        assert nothing is None and trace_var.get() is None
    with continue_trace(f"00-{TRACE}-{PARENT}-01") as current:
        assert current is not None and trace_var.get() == current and current.split("-")[1] == TRACE
    assert trace_var.get() is None


async def test_request_trace_goes_into_its_event(env: Env) -> None:
    app = create_app(env.settings(BeneficiariesSettings))
    async with running(app) as client:
        cid = await community(client, env)
        resp = await client.post("/api/v1/beneficiaries", json=person(cid), headers={
            **env.token("case_worker"), "traceparent": f"00-{TRACE}-{PARENT}-01"})
        assert resp.status_code == 201
        async with app.state.sessionmaker() as session:
            payloads = (await session.execute(select(OutboxMessage.payload).order_by(OutboxMessage.seq))).scalars()
            events = [CloudEvent.model_validate_json(p) for p in payloads]
    registered = [e for e in events if e.type.endswith("registered.v1")][0]
    assert registered.traceparent is not None
    _, trace, span, _ = registered.traceparent.split("-")
    assert trace == TRACE and span != PARENT  # the service's own span, child of the caller's
    untraced = [e for e in events if e.type.endswith("community.created.v1")][0]
    assert untraced.traceparent is not None and untraced.traceparent.split("-")[1] != TRACE


async def test_spans_exported_to_an_otlp_receiver(env: Env) -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[bytes] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            if self.path == "/v1/traces":
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    # Its own thread: the SDK exports from threads (and, at shutdown, from the caller's).
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = create_app(env.settings(BeneficiariesSettings, otel_exporter_otlp_endpoint=f"http://127.0.0.1:{port}"))
        async with running(app) as client:
            resp = await client.get("/api/v1/locations/governorates", headers={
                **env.token("viewer"), "traceparent": f"00-{TRACE}-{PARENT}-01"})
            assert resp.status_code == 200
        # The lifespan's end flushed the spans.
        spans: list[Any] = []
        for body in received:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans += [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        ours = [s for s in spans if s.trace_id.hex() == TRACE]
        assert len(ours) == 1 and ours[0].parent_span_id.hex() == PARENT
        assert ours[0].name == "GET /api/v1/locations/governorates"
    finally:
        server.shutdown()
        server.server_close()
