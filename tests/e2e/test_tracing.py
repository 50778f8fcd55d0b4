"""One trace id from the gateway's log, through the service that wrote, to the consumer that applied the event."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_platform import RunningPlatform, auth, start_platform, stop_platform, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_platform(tmp_path_factory.mktemp("crp-trace"))
    yield running
    stop_platform(running)


def log_lines(platform: RunningPlatform, service: str) -> list[dict[str, Any]]:
    lines = []
    for line in (platform.data_dir / "logs" / f"{service}.log").read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue  # uvicorn's start-up lines are not ours
    return lines


def with_trace(platform: RunningPlatform, service: str, trace_id: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(platform, service) if line.get("trace_id") == trace_id]


def register(client: httpx.Client, community_id: str, name: str, headers: dict[str, str]) -> httpx.Response:
    return client.post("/api/v1/beneficiaries", headers=headers, json={
        "first_name": name, "father_name": "Tracer", "sex": "female", "date_of_birth": "1981-03-03",
        "displacement_status": "idp", "community_id": community_id,
        "consent": {"given": True, "obtained_on": "2026-11-20"}})


def test_one_trace_id_from_gateway_to_consumer(platform: RunningPlatform) -> None:
    headers = auth("programme_manager")
    with httpx.Client(base_url=platform.url, headers=headers, timeout=10) as client:
        community = client.post("/api/v1/communities", json={"name": "Bashiqa", "district_pcode": "IQG15Q06"})
        assert community.status_code == 201, community.text

        # A caller's trace is continued: the same trace id in the gateway's, the service's and the consumer's logs.
        caller_trace = os.urandom(16).hex()
        resp = register(client, community.json()["id"], "Warda",
                        {"traceparent": f"00-{caller_trace}-{os.urandom(8).hex()}-01"})
        assert resp.status_code == 201, resp.text
        event_applied = lambda: [line for line in with_trace(platform, "indicators", caller_trace)  # noqa: E731
                                 if line["message"] == "event applied"]
        [applied] = wait_for(event_applied, timeout=20)
        assert applied["event_type"] == "crp.beneficiaries.beneficiary.registered.v1"
        # (a request's line is written once its answer has gone: wait for it)
        [gateway] = wait_for(lambda: [line for line in with_trace(platform, "gateway", caller_trace)
                                      if line["message"] == "request"])
        assert gateway["status"] == 201
        [service] = wait_for(lambda: [line for line in with_trace(platform, "beneficiaries", caller_trace)
                                      if line["message"] == "request"])
        assert service["route"] == "/api/v1/beneficiaries" and service["status"] == 201

        # Without one, the gateway starts the trace: find its id in the gateway's log, then at the consumer.
        request_id = os.urandom(8).hex()
        resp = register(client, community.json()["id"], "Yasmin", {"X-Request-ID": request_id})
        assert resp.status_code == 201
        [started] = wait_for(lambda: [line for line in log_lines(platform, "gateway")
                                      if line.get("request_id") == request_id])
        trace = started["trace_id"]
        assert trace and len(trace) == 32 and trace != caller_trace
        wait_for(lambda: [line for line in with_trace(platform, "indicators", trace)
                          if line["message"] == "event applied"], timeout=20)
        # Malformed trace context from a caller is replaced, never passed on.
        request_id = os.urandom(8).hex()
        resp = client.get("/api/v1/beneficiaries", headers={"traceparent": "00-zz-not-a-trace",
                                                             "X-Request-ID": request_id})
        assert resp.status_code == 200
        [replaced] = wait_for(lambda: [line for line in log_lines(platform, "gateway")
                                       if line.get("request_id") == request_id and line.get("message") == "request"])
        assert replaced["trace_id"] and len(replaced["trace_id"]) == 32
        assert not [line for line in log_lines(platform, "gateway") if line.get("trace_id") in ("zz", None)
                    and line.get("message") == "request"]


def test_logs_hold_no_personal_data(platform: RunningPlatform) -> None:
    for service in ("gateway", "beneficiaries", "indicators"):
        text = (Path(platform.data_dir) / "logs" / f"{service}.log").read_text()
        assert "Warda" not in text and "Yasmin" not in text
