"""The OpenAPI document every service and the gateway publish, finished the same way so that generated
clients read well:

- operation ids are the route functions' names (``register_beneficiary``), unique across the platform;
- every error response is ``application/problem+json`` with the one shared ``Problem`` schema (no
  ``HTTPValidationError``), and each operation lists the errors it can really answer: 401/403 where a token
  is needed, 404 under a path parameter, 412/428 on PATCH, 422 on input;
- ``Idempotency-Key`` is declared on the operations that honour it, ``If-Match`` on PATCH, ``ETag`` on the
  responses that carry a versioned resource;
- every request body has an example (the schema's own, else one built from the schema).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

PROBLEM_JSON = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PUBLIC_PREFIX = "/api/v1/public/"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details, the body of every error. Some problems add members "
                   "(`candidates` of a probable duplicate, `current_etag` of a 412, `retry_after` of a 429).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "`urn:crp:problem:<slug>` (stable: branch on it), or `about:blank`.",
                 "examples": ["urn:crp:problem:not-found"]},
        "title": {"type": "string", "description": "The HTTP status phrase, or a short summary."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, for a person to read."},
        "instance": {"type": "string", "description": "The request path."},
        "errors": {
            "type": "array", "description": "Validation problems (422): where and what.",
            "items": {"type": "object", "required": ["loc", "msg"], "properties": {
                "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "examples": [["body", "date_of_birth"]]},
                "msg": {"type": "string"}}},
        },
    },
    "additionalProperties": True,
}

# What each status means on any operation that can answer it.
ERRORS: dict[str, str] = {
    "400": "Malformed request: more than one `Authorization` or `X-API-Key` header",
    "401": "No valid token or API key",
    "403": "Your role does not allow this",
    "404": "No such resource, or outside your governorates",
    "409": "Conflicts with the resource's current state",
    "412": "`If-Match` does not name the current `ETag`: read the resource again",
    "413": "Request body too large",
    "422": "Invalid input: see `errors`",
    "428": "`If-Match` is required",
    "429": "Rate limit exceeded: retry after `Retry-After` seconds",
    "502": "The service answered something the gateway cannot pass on",
    "503": "The service (or one it depends on) is unavailable: retry later",
    "504": "The service did not answer in time",
}

IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Any unique string (a UUID) chosen by you: sending the same request again with the same key "
                   "replays the first answer (with `Idempotency-Replayed: true`) and changes nothing; the same key "
                   "with another body is 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255}, "example": "6f1c1f1e-8d2c-4a5e-9c7b-1d2e3f4a5b6c",
}
IF_MATCH: dict[str, Any] = {
    "name": "If-Match", "in": "header", "required": True,
    "description": "The `ETag` you read: the change applies only if nobody changed the resource since (else 412).",
    "schema": {"type": "string"}, "example": '"5b0e4a57-2b9e-4c1e-8f0a-2d3c4b5a6978.3"',
}
ETAG_HEADER: dict[str, Any] = {
    "description": "The resource's version: send it back as `If-Match` to change it.",
    "schema": {"type": "string"},
}
REPLAYED_HEADER: dict[str, Any] = {
    "description": "`true` when this answer is the replay of an earlier request with the same `Idempotency-Key`.",
    "schema": {"type": "string", "enum": ["true"]},
}


def operation_id(route: APIRoute) -> str:
    """The operation id of a route: its function's name (``register_beneficiary``), which is also the method
    name a generated client gets. ``generate_unique_id_function`` of every app of the platform."""
    return route.name


def _dependencies(dependant: Dependant) -> Iterable[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _dependencies(sub)


def _api_routes(routes: Iterable[Any]) -> Iterable[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        nested = getattr(route, "original_router", None)  # a router included in a router
        if nested is not None:
            yield from _api_routes(nested.routes)


def idempotent_operations(routers: Iterable[APIRouter]) -> set[str]:
    """Operation ids of the routes that honour ``Idempotency-Key`` (they depend on ``get_idempotency`` or
    ``get_unbound_idempotency``)."""
    from shared.idempotency import IDEMPOTENCY_DEPENDENCIES

    return {operation_id(route) for router in routers for route in _api_routes(router.routes)
            if IDEMPOTENCY_DEPENDENCIES & set(_dependencies(route.dependant))}


def _resolve(node: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return components.get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
    return node


def example_of(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """An example value built from a JSON schema (its own examples and defaults first)."""
    schema = _resolve(schema, components)
    if depth > 6:
        return None
    if "examples" in schema and isinstance(schema["examples"], list) and schema["examples"]:
        return schema["examples"][0]
    if "example" in schema:
        return schema["example"]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if _resolve(o, components).get("type") != "null"]
            return example_of(options[0] if options else schema[key][0], components, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = schema.get("required", list(props))
        return {name: example_of(props[name], components, depth + 1) for name in required if name in props}
    if kind == "array":
        return [example_of(schema.get("items", {}), components, depth + 1)]
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), int(schema.get("exclusiveMinimum", 0)) + 1)
    if kind == "number":
        return float(schema.get("minimum", 0) or 100)
    if kind == "boolean":
        return True
    if kind == "string":
        formats = {"date": "2026-11-20", "date-time": "2026-11-20T08:30:00Z", "email": "someone@example.org",
                   "uuid": "5b0e4a57-2b9e-4c1e-8f0a-2d3c4b5a6978", "uri": "https://example.org"}
        return formats.get(schema.get("format", ""), "string")
    return None


def _is_versioned(response: dict[str, Any], components: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    props = _resolve(schema, components).get("properties", {})
    return "version" in props and "id" in props


def finish(schema: dict[str, Any], *, idempotent: set[str] | None = None) -> dict[str, Any]:
    """The document with the conventions above applied (in place; also returned)."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = copy.deepcopy(PROBLEM_SCHEMA)
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            responses = op.setdefault("responses", {})
            if path.startswith("/api/") and not path.startswith(PUBLIC_PREFIX):  # a token is needed
                responses.setdefault("401", {})
                responses.setdefault("403", {})
            else:
                responses.pop("401", None)
                responses.pop("403", None)
            if "{" in path:
                responses.setdefault("404", {})
            if method == "patch":
                responses.setdefault("412", {})
                responses.setdefault("428", {})
                params = op.setdefault("parameters", [])
                if not any(p.get("name", "").lower() == "if-match" for p in params):
                    params.append(copy.deepcopy(IF_MATCH))
            if idempotent is not None and op.get("operationId") in idempotent:
                params = op.setdefault("parameters", [])
                if not any(p.get("name", "").lower() == "idempotency-key" for p in params):
                    params.append(copy.deepcopy(IDEMPOTENCY_KEY))
                for code, response in responses.items():
                    if code.startswith("2"):
                        response.setdefault("headers", {})["Idempotency-Replayed"] = copy.deepcopy(REPLAYED_HEADER)
            for code, response in list(responses.items()):
                if code.startswith("2") and _is_versioned(response, components):
                    response.setdefault("headers", {})["ETag"] = copy.deepcopy(ETAG_HEADER)
                if code[0] in "45":
                    if response.get("description") in (None, "", "Validation Error"):  # FastAPI's own
                        response["description"] = ERRORS.get(code, "Error")
                    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
            op["responses"] = dict(sorted(responses.items()))
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and "example" not in body and "examples" not in body:
                body["example"] = example_of(body.get("schema", {}), components)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return schema


def install(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Serve the finished document at ``/openapi.json`` (built once, on first request); ``routers`` are the
    app's own routers, whose routes declare what they honour."""
    build = app.openapi
    idempotent = idempotent_operations(routers)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish(build(), idempotent=idempotent)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
