"""The merged OpenAPI document, /readyz with one line per service, and /metrics."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.gateway.test_proxy import ADMIN, assert_problem


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node))
    return set()


def test_openapi_merges_the_services_with_tags_and_unique_operation_ids(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    # Each service contributes only the paths the gateway routes to it.
    assert "/api/v1/beneficiaries/items/{item_id}" in paths
    assert "/api/v1/indicators/items/{item_id}" in paths
    assert "/api/v1/public/indicators/items/{item_id}" in paths
    assert "/readyz" in paths and "/api/v1/api-keys" in paths  # the gateway's own

    beneficiaries = paths["/api/v1/beneficiaries/items/{item_id}"]["get"]
    indicators = paths["/api/v1/indicators/items/{item_id}"]["get"]
    assert beneficiaries["tags"] == ["beneficiaries"] and indicators["tags"] == ["indicators"]
    assert [t["name"] for t in doc["tags"]] == ["gateway", "beneficiaries", "indicators"]

    operation_ids = [op["operationId"] for item in paths.values() for method, op in item.items()
                     if method in ("get", "post", "put", "patch", "delete")]
    assert len(operation_ids) == len(set(operation_ids))
    assert all(op_id.replace("_", "").isalnum() for op_id in operation_ids)

    # "Item" means two things: one service keeps the name, the other's is renamed; "Shared" is one.
    schemas = doc["components"]["schemas"]
    ref_b = beneficiaries["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    ref_i = indicators["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref_b != ref_i
    b_item, i_item = (schemas[ref.rsplit("/", 1)[1]] for ref in (ref_b, ref_i))
    assert "size" in b_item["properties"] and "colour" in i_item["properties"]
    assert "Shared" in schemas and not any(name.endswith("Shared") and name != "Shared" for name in schemas)
    for ref in refs(doc):  # every reference resolves
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in doc["components"][section], ref

    assert paths["/api/v1/public/indicators/items/{item_id}"]["get"]["security"] == []
    assert "security" not in beneficiaries and doc["security"] == [{"bearer": []}, {"apiKey": []}]
    assert set(doc["x-crp-unavailable-services"]) == {"grants", "training", "infrastructure", "feedback"}


def test_docs_page_points_at_the_merged_document_and_loads_nothing_from_elsewhere(client: httpx.Client) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    references = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert references and all(ref.startswith("/") and not ref.startswith("//") for ref in references), references
    assert "default-src 'self'" in r.headers["content-security-policy"]
    for ref in references:  # every file the page needs is served here
        assert client.get(ref).status_code == 200, ref
    init = client.get("/docs/init.js").text
    assert '"/openapi.json"' in init and "http" not in init


def test_readyz_has_a_line_per_service(client: httpx.Client) -> None:
    body = assert_problem(client.get("/readyz"), 503)
    assert body["checks"] == {"database": "ok", "beneficiaries": "ok", "grants": "unavailable",
                              "training": "not configured", "infrastructure": "not configured",
                              "feedback": "not configured", "indicators": "ok"}


def test_metrics_have_route_latency_and_upstream_statuses(client: httpx.Client) -> None:
    client.get("/api/v1/beneficiaries/status/418", headers=ADMIN)
    client.get("/api/v1/beneficiaries/x", headers=ADMIN)
    text = client.get("/metrics").text
    assert ('crp_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/v1/beneficiaries",'
            'service="gateway"}') in text
    assert 'crp_gateway_upstream_responses_total{status="418",upstream="beneficiaries"}' in text
    assert 'crp_gateway_upstream_responses_total{status="200",upstream="beneficiaries"}' in text
    assert 'crp_gateway_upstream_duration_seconds_count{upstream="beneficiaries"}' in text
