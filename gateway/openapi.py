"""One OpenAPI document for the whole platform, merged from the services' own.

Each service's operations keep their operation ids (the route functions' names, ``shared.openapi``: unique
across the platform; a clash is logged and prefixed with the service) and are tagged by resource (the last
segment of the routed prefix they are under: ``beneficiaries``, ``grant-calls``), the tags grouped by
service (``x-tagGroups``); only the paths the gateway routes to that service are kept, and each lists the
errors the gateway itself may answer for it (429, 503, 504). Components with the same name and the same
content are shared (``Problem``); a name that means something else in another service is renamed
``<Service><Name>`` and every ``$ref`` to it rewritten, so generated clients compile.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import re
import time
from typing import Any

import aiohttp

from gateway.settings import PUBLIC_PREFIX
from shared.openapi import ERRORS, PROBLEM_JSON, PROBLEM_REF

log = logging.getLogger("crp.gateway.openapi")

REF_PREFIX = "#/components/"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "A partner system's key (see `POST /api/v1/api-keys`)."},
}
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")
GATEWAY_ERRORS = ("429", "503", "504")  # what the gateway may answer for any operation it routes


def resource_tag(prefix: str) -> str:
    """The tag of the operations under a routed prefix: its last segment (``/api/v1/grant-calls`` ->
    ``grant-calls``; ``/api/v1/public/indicators`` -> ``indicators``)."""
    return prefix.rstrip("/").rsplit("/", 1)[-1]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part)


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    """A copy of ``node`` with every ``$ref`` to a renamed component pointing at its new name."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value in renames:
                out[key] = renames[value]
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


def merge(gateway_spec: dict[str, Any], services: dict[str, dict[str, Any]],
          routes: list[tuple[str, str]]) -> dict[str, Any]:
    """The gateway's own document plus every service's routed operations."""
    merged = copy.deepcopy(gateway_spec)
    merged["paths"] = dict(merged.get("paths", {}))
    components = merged.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    merged["security"] = [{"bearer": []}, {"apiKey": []}]
    tags = [{"name": "gateway", "description": "The gateway itself: health, metrics, API keys."}]
    groups = [{"name": "gateway", "tags": ["gateway"]}]
    operation_ids: set[str] = set()
    for path, item in merged["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                operation_ids.add(op.get("operationId", ""))
                if path in PUBLIC_PATHS or path.startswith("/.well-known/"):  # keys and revocations are public
                    op["security"] = []

    for service, spec in services.items():
        prefixes = [prefix for prefix, name in routes if name == service]
        paths = {path: item for path, item in spec.get("paths", {}).items()
                 if any(path == p or path.startswith(p + "/") for p in prefixes)}
        if not paths:
            continue
        theirs = spec.get("components", {})
        # Which of this service's components must be renamed: a name taken with other content, and
        # (until nothing changes) anything that refers to a renamed component.
        renamed: set[tuple[str, str]] = set()
        changed = True
        while changed:
            changed = False
            for section, entries in theirs.items():
                if section == "securitySchemes":
                    continue
                for name, value in entries.items():
                    if (section, name) in renamed:
                        continue
                    ours = components.get(section, {}).get(name)
                    refers_renamed = any(ref.removeprefix(REF_PREFIX).split("/", 1) == [s, n]
                                         for ref in _refs(value) for s, n in renamed)
                    if (ours is not None and ours != value) or refers_renamed:
                        renamed.add((section, name))
                        changed = True
        renames = {f"{REF_PREFIX}{s}/{n}": f"{REF_PREFIX}{s}/{_camel(service)}{n}" for s, n in renamed}
        for section, entries in theirs.items():
            if section == "securitySchemes":
                continue
            target = components.setdefault(section, {})
            for name, value in entries.items():
                new_name = f"{_camel(service)}{name}" if (section, name) in renamed else name
                target[new_name] = _rewrite_refs(value, renames)
                if new_name != name and isinstance(value, dict) and value.get("title") == name:
                    # Generators name a model after its title: two models must not share one.
                    target[new_name]["title"] = new_name
        service_tags: list[str] = []
        for path, item in paths.items():
            item = _rewrite_refs(item, renames)
            prefix = max((p for p in prefixes if path == p or path.startswith(p + "/")), key=len)
            tag = resource_tag(prefix)
            if tag not in service_tags:
                service_tags.append(tag)
            for method, op in item.items():
                if method not in METHODS:
                    continue
                op["tags"] = [tag]
                op_id = op.get("operationId") or method + re.sub(r"[^A-Za-z0-9]+", "_", path)
                if op_id in operation_ids:
                    log.warning("operation id %s of %s is already taken: renamed %s_%s", op_id, service,
                                service, op_id)
                    op_id = f"{service}_{op_id}"
                operation_ids.add(op_id)
                op["operationId"] = op_id
                responses = op.setdefault("responses", {})
                for code in GATEWAY_ERRORS:
                    responses.setdefault(code, {"description": ERRORS[code],
                                                "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}})
                if path.startswith(PUBLIC_PREFIX):
                    op["security"] = []
                else:
                    op.pop("security", None)  # the document's default: bearer or API key
            merged["paths"][path] = item
        info = spec.get("info", {})
        about = info.get("title") or service
        for tag in service_tags:
            tags.append({"name": tag, "description": f"{tag.replace('-', ' ').capitalize()} ({about})."})
        groups.append({"name": service, "tags": service_tags})
    merged["tags"] = tags
    merged["x-tagGroups"] = groups
    return merged


class MergedOpenAPI:
    """Fetches the services' documents (briefly cached) and merges them with the gateway's."""

    def __init__(self, services: list[str], upstreams: dict[str, str], routes: list[tuple[str, str]],
                 cache_seconds: float, timeout: float) -> None:
        self.services = services  # in the routing table's order, which is the order of the tags
        self.upstreams = upstreams
        self.routes = routes
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self._cached: tuple[float, bytes] | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self, session: aiohttp.ClientSession, service: str, url: str) -> dict[str, Any] | None:
        try:
            async with session.get(f"{url.rstrip('/')}/openapi.json",
                                   timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                if response.status != 200:
                    return None
                return json.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("no OpenAPI from %s: %r", service, exc)
            return None

    async def document(self, session: aiohttp.ClientSession, gateway_spec: dict[str, Any]) -> bytes:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and self._cached[0] > now:
                return self._cached[1]
            names = self.services
            configured = [name for name in names if name in self.upstreams]
            specs = await asyncio.gather(*(self._fetch(session, n, self.upstreams[n]) for n in configured))
            available = {name: spec for name, spec in zip(configured, specs, strict=True) if spec is not None}
            merged = merge(gateway_spec, available, self.routes)
            merged["x-crp-unavailable-services"] = sorted(set(names) - set(available))
            body = json.dumps(merged).encode()
            # Cache a partial document only briefly, so a service that starts late shows up soon.
            ttl = self.cache_seconds if len(available) == len(names) else min(self.cache_seconds, 2.0)
            self._cached = (now + ttl, body)
            return body
