"""The platform's services: the one list that ports, `crp dev`, `crp migrate`, the gateway's routing
table, its readiness and its merged OpenAPI are all derived from.

A service's code lives in ``services/<name>/`` and declares itself there (``service = Service(...)`` in
``app.py``, see ``shared.app``); this list only says where it sits and which public paths are its own.
A service listed here whose package does not exist yet answers 503 at the gateway.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.app import Service

DEFAULT_GATEWAY_PORT = 8000


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    prefixes: tuple[str, ...]  # the public path prefixes the gateway routes to this service


# In port order: the gateway listens on P, these on P+1 .. P+6 (the contract's order).
SERVICES: tuple[Entry, ...] = (
    Entry("beneficiaries", ("/api/v1/locations", "/api/v1/communities", "/api/v1/households",
                            "/api/v1/beneficiaries", "/api/v1/duplicate-reviews")),
    Entry("grants", ("/api/v1/grants", "/api/v1/grant-calls")),
    Entry("training", ("/api/v1/courses", "/api/v1/enrolments", "/api/v1/follow-ups", "/api/v1/market-assessments",
                       "/api/v1/job-opportunities")),
    Entry("infrastructure", ("/api/v1/infrastructure-projects", "/api/v1/community-assessments")),
    Entry("feedback", ("/api/v1/feedback", "/api/v1/resource-centres", "/api/v1/community-activities",
                       "/api/v1/public/feedback")),
    Entry("indicators", ("/api/v1/indicators", "/api/v1/public/indicators", "/api/v1/webhooks")),
)
NAMES: tuple[str, ...] = tuple(entry.name for entry in SERVICES)


def port(name: str, gateway_port: int = DEFAULT_GATEWAY_PORT) -> int:
    """The port of service ``name`` when the gateway listens on ``gateway_port``."""
    return gateway_port + 1 + NAMES.index(name)


def built() -> list[str]:
    """Services of the list whose package exists in this checkout, in port order."""
    return [name for name in NAMES if importlib.util.find_spec(f"services.{name}") is not None]


def load(name: str) -> Service:
    """The declaration of service ``name`` (importing its package)."""
    if name not in NAMES:
        raise LookupError(f"unknown service {name!r}; the platform's services are {', '.join(NAMES)}")
    return importlib.import_module(f"services.{name}.app").service
