"""The service list: every service's routes are reachable through the gateway's table derived from it."""

from __future__ import annotations

import pytest

from gateway.settings import GatewaySettings
from shared import catalog

OWN_ROUTES = ("/healthz", "/readyz", "/metrics")


@pytest.mark.parametrize("name", catalog.built())
def test_every_route_of_a_service_is_routed_to_it_by_the_gateway(name: str) -> None:
    service = catalog.load(name)
    assert service.name == name
    table = GatewaySettings().route_table()  # longest prefix first, as the gateway matches
    app = service.create_app(service.make_settings(migrate_on_start=False))
    paths = [path for path in app.openapi()["paths"] if path not in OWN_ROUTES]
    assert paths
    for path in paths:
        owner = next((svc for prefix, svc in table if path == prefix or path.startswith(prefix + "/")), None)
        assert owner == name, f"{path} of {name} is routed to {owner}"


def test_ports_follow_the_list_and_the_gateway_port() -> None:
    assert [catalog.port(n) for n in catalog.NAMES] == [8001, 8002, 8003, 8004, 8005, 8006]
    assert catalog.port("indicators", 9000) == 9006
    assert GatewaySettings().upstreams["grants"] == "http://127.0.0.1:8002"
    with pytest.raises(LookupError):
        catalog.load("payroll")
