"""The merged OpenAPI of every built service and the gateway: the shape generated clients need, and a client
generated from it with an established generator (``openapi-python-client``) that talks to a real service."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from gateway import apikeys
from gateway.app import create_app as create_gateway
from gateway.openapi import merge
from gateway.settings import GatewaySettings
from shared import catalog
from shared.openapi import METHODS, PROBLEM_JSON, PROBLEM_REF, _api_routes
from tests.conftest import Env, running
from tests.deploy.conftest import tool

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def routers() -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {name: list(catalog.load(name).routers) for name in catalog.built()}
    found["gateway"] = [apikeys.router]
    return found


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """What the gateway's /openapi.json serves once every built service answers (merged in-process)."""
    settings = GatewaySettings()
    services = {name: catalog.load(name).create_app().openapi() for name in catalog.built()}
    return merge(create_gateway(settings).openapi(), services, settings.route_table())


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
            if method in METHODS]


def test_operation_ids_are_the_route_functions_names_unique_and_short(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(ids) == len(set(ids))
    for op_id in ids:
        assert SNAKE.match(op_id) and len(op_id) <= 40, op_id
    names = {route.name for rs in routers().values() for route in _api_routes(r for x in rs for r in x.routes)}
    service_ids = {op["operationId"] for path, _, op in operations(document) if path.startswith("/api/")}
    assert service_ids <= names  # no prefix, no suffix added to make an id unique
    assert {"register_beneficiary", "update_beneficiary", "list_beneficiaries", "create_api_key"} <= service_ids


def test_every_operation_has_one_resource_tag_grouped_by_service(document: dict[str, Any]) -> None:
    declared = [tag["name"] for tag in document["tags"]]
    assert len(declared) == len(set(declared))
    for path, _, op in operations(document):
        assert len(op["tags"]) == 1 and op["tags"][0] in declared, path
    assert document["paths"]["/api/v1/beneficiaries"]["post"]["tags"] == ["beneficiaries"]
    assert document["paths"]["/api/v1/communities"]["post"]["tags"] == ["communities"]
    grouped = {tag for group in document["x-tagGroups"] for tag in group["tags"]}
    assert grouped == set(declared)
    assert [g["name"] for g in document["x-tagGroups"]] == ["gateway", *catalog.built()]


def test_every_error_is_a_problem_and_nothing_else(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    assert "HTTPValidationError" not in text and '"ValidationError"' not in text
    assert set(document["components"]["schemas"]["Problem"]["required"]) == {"type", "title", "status", "detail"}
    for path, _method, op in operations(document):
        for code, response in op["responses"].items():
            if code[0] in "45":
                assert response["content"] == {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}, (path, code)
                assert response["description"], (path, code)


def test_each_operation_lists_the_errors_it_can_answer(document: dict[str, Any]) -> None:
    for path, method, op in operations(document):
        codes = set(op["responses"])
        if not path.startswith("/api/"):
            continue
        assert {"429", "503", "504"} <= codes or path.startswith("/api/v1/api-keys"), path
        if path.startswith("/api/v1/public/"):
            assert not {"401", "403"} & codes, path
        else:
            assert {"401", "403", "422"} <= codes, path
        if "{" in path:
            assert "404" in codes, path
        if method == "patch":
            assert {"412", "428"} <= codes, path
    register = document["paths"]["/api/v1/beneficiaries"]["post"]["responses"]
    assert "409" in register  # declared by the route: a probable duplicate


def test_conditional_and_idempotent_requests_are_declared(document: dict[str, Any]) -> None:
    patch = document["paths"]["/api/v1/beneficiaries/{beneficiary_id}"]["patch"]
    if_match = next(p for p in patch["parameters"] if p["name"] == "If-Match")
    assert if_match["in"] == "header" and if_match["required"] is True
    assert "ETag" in patch["responses"]["200"]["headers"]
    assert "ETag" in document["paths"]["/api/v1/beneficiaries/{beneficiary_id}"]["get"]["responses"]["200"]["headers"]
    from shared.idempotency import IDEMPOTENCY_DEPENDENCIES
    from shared.openapi import _dependencies

    honoured = {route.name for rs in routers().values() for route in _api_routes(r for x in rs for r in x.routes)
                if IDEMPOTENCY_DEPENDENCIES & set(_dependencies(route.dependant))}
    assert len(honoured) > 20
    for path, method, op in operations(document):
        names = {p["name"] for p in op.get("parameters", [])}
        assert ("Idempotency-Key" in names) == (op["operationId"] in honoured), (path, method)
        if op["operationId"] in honoured:
            success = next(r for code, r in op["responses"].items() if code.startswith("2"))
            assert "Idempotency-Replayed" in success["headers"]


def test_every_request_body_has_an_example_and_declared_ones_are_accepted(document: dict[str, Any]) -> None:
    """Every body has an example: the one its model declares (which its route must accept), else one built from
    the schema (a starting point: a model validator across fields may still refuse it)."""
    by_id = {op["operationId"]: op for _, _, op in operations(document)}
    bodies = declared = 0
    for rs in routers().values():
        for route in _api_routes(r for x in rs for r in x.routes):
            if route.body_field is None:
                continue
            body = by_id[route.name]["requestBody"]["content"]["application/json"]
            assert body["example"] is not None, route.name
            bodies += 1
            model = route.body_field.field_info.annotation
            examples = (getattr(model, "model_config", None) or {}).get("json_schema_extra") or {}
            if isinstance(examples, dict) and examples.get("examples"):
                assert body["example"] == examples["examples"][0]
                TypeAdapter(model).validate_python(body["example"])
                declared += 1
    assert bodies > 20 and declared >= 8
    register = by_id["register_beneficiary"]["requestBody"]["content"]["application/json"]["example"]
    assert register["consent"]["given"] is True and register["first_name"] == "أحمد"


# -- a generated client ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client_package(document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The client ``openapi-python-client`` generates from the merged document, importable as a package
    (its time is printed: about 3 s here)."""
    out = tmp_path_factory.mktemp("client")
    spec = out / "openapi.json"
    spec.write_text(json.dumps(document))
    name = f"crp_client_{uuid.uuid4().hex[:8]}"
    # The generator reads JSON and text bodies; the IATI export (XML) comes back as bytes, as its documentation
    # says to declare for another content type.
    config = out / "config.json"
    config.write_text(json.dumps({"content_type_overrides": {"application/xml": "application/octet-stream"}}))
    started = time.monotonic()
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run([tool("openapi-python-client"), "generate", "--path", str(spec), "--meta", "none",
                             "--config", str(config), "--output-path", str(out / name)], cwd=out,
                            capture_output=True, text=True, timeout=300,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(out)})
    print(f"openapi-python-client generated the client in {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    # Nothing skipped, but the CSV form of the import upload: the generator takes no text/csv request body (mapped
    # to bytes it emits a union that does not import), so its client uploads the JSON array form.
    warnings = [w for w in re.split(r"\n(?=WARNING)", result.stdout + result.stderr) if w.startswith("WARNING")]
    assert all("POST /api/v1/beneficiaries/imports" in w and "text/csv" in w for w in warnings), warnings
    sys.path.insert(0, str(out))
    return name


def test_the_generated_client_has_a_method_per_operation(client_package: str, document: dict[str, Any]) -> None:
    for _, _, op in operations(document):
        module = importlib.import_module(f"{client_package}.api.{op['tags'][0].replace('-', '_')}.{op['operationId']}")
        assert callable(module.sync_detailed) and callable(module.asyncio_detailed)
    compiled = subprocess.run([sys.executable, "-m", "compileall", "-q", importlib.import_module(client_package)
                               .__path__[0]], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stdout


async def test_the_generated_client_talks_to_the_real_service(client_package: str, env: Env) -> None:
    from services.beneficiaries.app import service

    api = f"{client_package}.api"
    client_mod = importlib.import_module(f"{client_package}.client")
    models = importlib.import_module(f"{client_package}.models")
    create_community = importlib.import_module(f"{api}.communities.create_community")
    register = importlib.import_module(f"{api}.beneficiaries.register_beneficiary")
    get_beneficiary = importlib.import_module(f"{api}.beneficiaries.get_beneficiary")

    app = service.create_app(env.settings(service.settings))
    async with running(app):
        client = client_mod.AuthenticatedClient(base_url="http://test", token="unused")
        token = env.token("case_worker")["Authorization"].removeprefix("Bearer ")
        client.set_async_httpx_client(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                                        headers={"Authorization": f"Bearer {token}"}))
        community = await create_community.asyncio(
            client=client, body=models.CommunityCreate(name="Generated", district_pcode="IQG15Q05"))
        assert isinstance(community, models.CommunityPublic) and community.governorate_pcode == "IQG15"
        body = models.BeneficiaryCreate.from_dict({
            "first_name": "Generated", "father_name": "Client", "sex": "female", "date_of_birth": "1990-01-02",
            "displacement_status": "idp", "community_id": community.id,
            "consent": {"given": True, "obtained_on": "2026-11-01"}})
        key = str(uuid.uuid4())
        first = await register.asyncio_detailed(client=client, body=body, idempotency_key=key)
        again = await register.asyncio_detailed(client=client, body=body, idempotency_key=key)
        assert first.status_code == 201 and isinstance(first.parsed, models.BeneficiaryPublic)
        assert again.parsed.id == first.parsed.id and again.headers["idempotency-replayed"] == "true"
        found = await get_beneficiary.asyncio_detailed(client=client, beneficiary_id=first.parsed.id)
        assert found.parsed.id == first.parsed.id and found.headers["etag"]
        missing = await get_beneficiary.asyncio_detailed(client=client, beneficiary_id=str(uuid.uuid4()))
        assert missing.status_code == 404 and isinstance(missing.parsed, models.Problem)
        assert missing.parsed.type_ == "urn:crp:problem:not-found"


@pytest.mark.parametrize("name", catalog.built())
async def test_each_service_serves_its_docs_without_a_cdn(name: str) -> None:
    app = catalog.load(name).create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        references = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert references and all(ref.startswith("/") and not ref.startswith("//") for ref in references)
        for ref in references:
            assert (await client.get(ref)).status_code == 200, ref
        spec = (await client.get("/openapi.json")).json()
        assert spec["components"]["schemas"]["Problem"]
