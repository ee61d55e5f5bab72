"""deploy/kubernetes: schema-valid manifests with the required keys, probes and hardening."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy._image import (
    KUBERNETES_DIR,
    kubernetes_documents,
    missing_from,
    parse_dockerfile,
)

MANIFESTS = sorted(p for p in KUBERNETES_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
YAMLLINT_CONFIG = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return kubernetes_documents()


@pytest.fixture(scope="module")
def deployment(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return documents["Deployment/xray-api"]


@pytest.fixture(scope="module")
def api_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["xray-api"]
    container: dict[str, Any] = containers[0]
    return container


@pytest.fixture(scope="module")
def migration_job(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return documents["Job/xray-migrate"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path: Any) -> None:
    # Strict: an unknown or misspelt field (e.g. "readinesProbe") is an error too.
    version = kubernetes_validate.latest_version()
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, version, strict=True)


def test_yamllint_accepts_every_kubernetes_file() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "-f",
            "parsable",
            "-d",
            YAMLLINT_CONFIG,
            str(KUBERNETES_DIR),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_runs_two_replicas_of_the_seeds_container(
    deployment: dict[str, Any], api_container: dict[str, Any]
) -> None:
    assert deployment["metadata"]["name"] == "xray-api"
    assert deployment["spec"]["replicas"] == 2
    assert api_container["image"] == "your-registry/xray-api:latest"
    assert [p["containerPort"] for p in api_container["ports"]] == [8000]


def test_deployment_selector_matches_its_pods(deployment: dict[str, Any]) -> None:
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_database_url_comes_from_the_xray_secrets_secret(api_container: dict[str, Any]) -> None:
    env = {item["name"]: item for item in api_container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "xray-secrets",
        "key": "database-url",
    }


def test_replicas_do_not_migrate_and_listen_on_all_interfaces(
    api_container: dict[str, Any],
) -> None:
    env = {item["name"]: item.get("value") for item in api_container["env"]}
    assert env["XRAY_RUN_MIGRATIONS"] == "false"
    assert env["XRAY_HOST"] == "0.0.0.0"
    assert env["XRAY_PORT"] == "8000"
    # No command override: the pods run the image's own CMD.
    assert "command" not in api_container and "args" not in api_container


def test_readiness_checks_the_database_and_liveness_does_not(
    api_container: dict[str, Any],
) -> None:
    ready = api_container["readinessProbe"]["httpGet"]
    live = api_container["livenessProbe"]["httpGet"]
    assert ready["path"] == "/readyz"
    assert live["path"] == "/healthz"
    assert api_container["startupProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {p.get("name"): p["containerPort"] for p in api_container["ports"]}
    for probe in (ready, live):
        assert port_names.get(probe["port"], probe["port"]) == 8000


def test_container_has_resource_requests_and_limits(api_container: dict[str, Any]) -> None:
    resources = api_container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])


@pytest.mark.parametrize("kind", ["Deployment/xray-api", "Job/xray-migrate"])
def test_pods_run_as_the_images_non_root_user_with_a_read_only_root(
    documents: dict[str, dict[str, Any]], kind: str
) -> None:
    pod = documents[kind]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    image_user = parse_dockerfile()[-1].last("USER")
    assert (
        image_user
        == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
    )
    for container in pod["containers"]:
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]


def test_service_routes_to_the_pods_http_port(
    documents: dict[str, dict[str, Any]], deployment: dict[str, Any]
) -> None:
    service = documents["Service/xray-api"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    [port] = service["spec"]["ports"]
    container_ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert port["targetPort"] in {p["name"] for p in container_ports}


def test_migrations_run_once_as_a_job_with_the_same_image_and_secret(
    migration_job: dict[str, Any], api_container: dict[str, Any]
) -> None:
    [container] = migration_job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["xray", "db", "upgrade"]
    assert container["image"] == api_container["image"]
    env = {item["name"]: item for item in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "xray-secrets",
        "key": "database-url",
    }
    assert migration_job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}


def test_secret_example_holds_placeholders_for_every_referenced_key(
    documents: dict[str, dict[str, Any]],
) -> None:
    secret = documents["Secret/xray-secrets"]
    referenced = {
        item["valueFrom"]["secretKeyRef"]["key"]
        for kind in ("Deployment/xray-api", "Job/xray-migrate")
        for container in documents[kind]["spec"]["template"]["spec"]["containers"]
        for item in container["env"]
        if "valueFrom" in item
    }
    assert referenced == set(secret["stringData"])
    # Placeholders only: nothing that could be a real credential is committed.
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())


def test_kustomization_lists_existing_files_but_not_the_secret_example(
    documents: dict[str, dict[str, Any]],
) -> None:
    kustomization = documents["Kustomization/kustomization.yaml"]
    resources = kustomization["resources"]
    assert all((KUBERNETES_DIR / name).is_file() for name in resources)
    assert {"deployment.yaml", "service.yaml"} <= set(resources)
    assert "secret.example.yaml" not in resources
    [image] = kustomization["images"]
    assert image["name"] == "your-registry/xray-api"


def test_schema_validation_rejects_a_misspelt_field(deployment: dict[str, Any]) -> None:
    # Guards the test above: the validator really reads the schema in strict mode.
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


# The documented minimal Deployment, verbatim.
SEED_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: xray-api
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: xray-api
          image: your-registry/xray-api:latest
          env:
            - name: DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: xray-secrets
                  key: database-url
          ports:
            - containerPort: 8000
"""


def test_deployment_contains_all_of_the_seeds_deployment(deployment: dict[str, Any]) -> None:
    assert missing_from(yaml.safe_load(SEED_DEPLOYMENT), deployment) == []
