"""deploy/k8s: every manifest validated against the Kubernetes schemas (``kubernetes-validate``, strict: an
unknown field is an error), and each service of the catalog and the gateway deployed the same way."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shared import catalog
from tests.deploy.conftest import K8S

BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "production"
NOT_MANIFESTS = {"kustomization.yaml", "nats-values.yaml"}
PROCESSES = [*catalog.NAMES, "gateway"]


def manifests() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name not in NOT_MANIFESTS)


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def port_of(name: str) -> int:
    return catalog.DEFAULT_GATEWAY_PORT if name == "gateway" else catalog.port(name)


@pytest.mark.parametrize("path", manifests(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_matches_the_kubernetes_schema(path: Path) -> None:
    for doc in documents(path):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_validator_refuses_an_unknown_field() -> None:
    (deployment, *_) = documents(BASE / "gateway.yaml")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_kustomizations_list_every_file_and_only_existing_ones() -> None:
    base = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert sorted(base["resources"]) == sorted(p.name for p in BASE.glob("*.yaml") if p.name not in NOT_MANIFESTS)
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    for resource in overlay["resources"]:
        assert (OVERLAY / resource).exists(), resource
    for patch in overlay["patches"]:
        assert (OVERLAY / patch["path"]).exists()
    assert overlay["images"][0]["name"] == "crp-platform"


def by_kind(name: str) -> dict[str, dict[str, Any]]:
    docs = documents(BASE / f"{name}.yaml")
    found = {doc["kind"]: doc for doc in docs}
    assert len(found) == len(docs), f"{name}.yaml: one of each kind"
    return found


@pytest.mark.parametrize("name", PROCESSES)
def test_each_service_and_the_gateway_is_deployed_scaled_and_protected(name: str) -> None:
    kinds = by_kind(name)
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    deployment, service = kinds["Deployment"], kinds["Service"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["metadata"]["name"] == service["metadata"]["name"] == name
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "crp-platform:latest"  # the overlay sets the registry and tag
    assert container["command"] == ["crp", "serve", name, "--host", "0.0.0.0"]
    port = port_of(name)
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    env = {e["name"]: e for e in container["env"]}
    assert env["CRP_PORT"]["value"] == str(port)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it

    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["port"] == port
    hpa, pdb = kinds["HorizontalPodAutoscaler"], kinds["PodDisruptionBudget"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]  # a node drain never blocks


def test_every_catalog_service_is_routed_and_every_built_one_loads() -> None:
    (config,) = documents(BASE / "config.yaml")
    upstreams = json.loads(config["data"]["CRP_UPSTREAMS"])
    assert upstreams == {name: f"http://{name}:{catalog.port(name)}" for name in catalog.NAMES}
    for name in catalog.built():  # `crp serve <name>` finds the service's declaration
        assert catalog.load(name).name == name


def test_secrets_come_from_the_secret_and_settings_from_the_config_map() -> None:
    example = (OVERLAY / "secrets.env.example").read_text()
    provided = set(re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE))
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    (generator,) = overlay["secretGenerator"]
    provided |= {entry.split("=", 1)[0] for entry in generator.get("files", [])}
    (config,) = documents(BASE / "config.yaml")
    for path in [*(BASE / f"{n}.yaml" for n in PROCESSES), BASE / "migrate-job.yaml"]:
        kind = documents(path)[0]
        (container,) = kind["spec"]["template"]["spec"]["containers"]
        assert container["envFrom"] == [{"configMapRef": {"name": "crp-config"}}]
        for entry in container["env"]:
            if "valueFrom" in entry:
                ref = entry["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "crp-secrets" and ref["key"] in provided, entry
                assert entry["name"] not in config["data"]
    assert "SECRET" not in " ".join(config["data"]) and "KEY" not in " ".join(config["data"])


def test_migration_job_and_ingress() -> None:
    (job,) = documents(BASE / "migrate-job.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["crp", "migrate"]
    (ingress,) = documents(BASE / "ingress.yaml")
    backends = [p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert backends == [{"name": "gateway", "port": {"name": "http"}}]  # the only way in


def test_nats_is_a_three_node_jetstream_cluster_holding_three_copies_of_the_stream() -> None:
    values = yaml.safe_load((K8S / "nats-values.yaml").read_text())
    assert values["config"]["cluster"] == {"enabled": True, "replicas": 3}
    assert values["config"]["jetstream"]["enabled"] is True
    assert values["config"]["jetstream"]["fileStore"]["pvc"]["enabled"] is True
    (config,) = documents(BASE / "config.yaml")
    assert config["data"]["CRP_NATS_STREAM_REPLICAS"] == "3"
    assert config["data"]["CRP_NATS_URL"] == "nats://nats:4222"


def test_the_network_policy_covers_every_service_but_not_the_gateway() -> None:
    (policy,) = documents(BASE / "network-policy.yaml")
    (selector,) = policy["spec"]["podSelector"]["matchExpressions"]
    assert selector["key"] == "app.kubernetes.io/name" and selector["operator"] == "In"
    assert sorted(selector["values"]) == sorted(catalog.NAMES)  # the gateway stays reachable from the Ingress
