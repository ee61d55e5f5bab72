"""Heroku (Procfile), Render (render.yaml), Cloud Run (deploy/cloud-run) and Lambda
(deploy/lambda/template.yaml): each file is linted, checked against what X-Ray reads, and
its commands are run as the platform runs them (PORT set by the platform)."""

from __future__ import annotations

import importlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import REPO_ROOT, free_port
from tests.deploy._image import (
    StagedImage,
    container_env,
    parse_dockerfile,
    run_to_completion,
    start,
)
from xray.shared import CONFIG_ENV_VAR, ENV_OVERRIDES, load_api_config

pytestmark = pytest.mark.slow

PROCFILE = REPO_ROOT / "Procfile"
RENDER = REPO_ROOT / "render.yaml"
CLOUD_RUN_SERVICE = REPO_ROOT / "deploy" / "cloud-run" / "service.yaml"
CLOUD_RUN_JOB = REPO_ROOT / "deploy" / "cloud-run" / "migrate-job.yaml"
SAM_TEMPLATE = REPO_ROOT / "deploy" / "lambda" / "template.yaml"
YAMLLINT_CONFIG = (
    "{extends: default, rules: {line-length: {max: 100}, document-start: disable,"
    " truthy: {check-keys: false}}}"
)
# What X-Ray reads from the environment; anything else a deploy file sets is a typo
# (or, listed here, the platform's own).
XRAY_VARIABLES = {*ENV_OVERRIDES, CONFIG_ENV_VAR}
PLATFORM_VARIABLES = {"PYTHON_VERSION"}  # Render's Python runtime


class _CloudFormation(yaml.SafeLoader):
    """Reads a SAM template's short-form intrinsics (!Ref, !If, ...) as plain values."""


_CloudFormation.add_multi_constructor(
    "!",
    lambda loader, tag, node: (
        loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
        if isinstance(node, yaml.MappingNode)
        else loader.construct_scalar(node)
    ),
)


def _procfile() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def _platform_env(**extra: str) -> dict[str, str]:
    """A platform's process environment: no X-Ray settings but what is given, and the
    installed package's scripts (``xray``) on PATH, as after a buildpack's install."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_") and k != "DATABASE_URL"}
    env.pop("PORT", None)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def _shell(command: str) -> list[str]:
    # Heroku and Render run these commands through a shell.
    return ["bash", "-c", command]


def _ingest_and_read_back(base_url: str, headers: dict[str, str] | None = None) -> None:
    from tests.api import _data

    run_id = _data.new_id()
    batch = {"runs": [_data.run(run_id, pipeline="platform-check")]}
    written = httpx.post(f"{base_url}/batch", json=batch, headers=headers, timeout=10)
    assert written.status_code == 200, written.text
    read = httpx.get(f"{base_url}/runs/{run_id}", headers=headers, timeout=10)
    assert read.status_code == 200 and read.json()["pipeline"] == "platform-check"


def _yamllint(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "-f", "parsable", "-d", YAMLLINT_CONFIG, str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------- PORT


def test_port_precedence_xray_port_then_platform_port_then_file(tmp_path: Path) -> None:
    config = tmp_path / "xray.config.yaml"
    config.write_text("api:\n  port: 8100\n")
    assert load_api_config(config, env={}).port == 8100
    # The platform's PORT beats a file copied from the example (which says 8000).
    assert load_api_config(config, env={"PORT": "5123"}).port == 5123
    assert load_api_config(config, env={"PORT": "5123", "XRAY_PORT": "6001"}).port == 6001
    assert load_api_config(config, env={"PORT": "5123"}, port=7001).port == 7001


# --------------------------------------------------------------------------- Heroku


def test_procfile_releases_with_a_migration_and_serves_on_all_interfaces() -> None:
    entries = _procfile()
    assert set(entries) == {"release", "web"}
    assert entries["release"] == "xray db upgrade"
    web = shlex.split(entries["web"])
    assert "XRAY_RUN_MIGRATIONS=false" in web  # the release phase migrates, dynos do not
    assert web[web.index("--host") + 1] == "0.0.0.0"
    assert "--port" not in web and "XRAY_PORT" not in entries["web"]  # Heroku's PORT rules


def test_requirements_txt_installs_this_checkout_with_the_server() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == [".[api]"]


@pytest.mark.postgres
def test_procfile_release_then_web_on_the_platforms_port(
    empty_postgres_database: str, tmp_path: Path
) -> None:
    entries = _procfile()
    # Heroku Postgres hands out postgres:// URLs.
    url = empty_postgres_database.replace("postgresql+asyncpg://", "postgres://")
    released = run_to_completion(
        _shell(entries["release"]), env=_platform_env(DATABASE_URL=url), cwd=tmp_path
    )
    assert released.returncode == 0, released.stdout + released.stderr
    port = free_port()
    env = _platform_env(DATABASE_URL=url, PORT=str(port))
    with start(
        _shell(entries["web"]), env=env, cwd=tmp_path, port=port, log_path=tmp_path / "web.log"
    ) as server:
        _ingest_and_read_back(server.base_url)
        server.process.send_signal(signal.SIGTERM)  # Heroku stops dynos with SIGTERM
        assert server.process.wait(timeout=15) in {0, -signal.SIGTERM, 143}
    assert "Traceback" not in server.log()


# --------------------------------------------------------------------------- Render


def test_render_blueprint_lints_and_wires_the_database() -> None:
    _yamllint(RENDER)
    blueprint = yaml.safe_load(RENDER.read_text())
    [web] = blueprint["services"]
    [database] = blueprint["databases"]
    assert (web["type"], web["runtime"]) == ("web", "python")
    assert web["buildCommand"] == "pip install '.[api]'"
    assert web["preDeployCommand"] == "xray db upgrade"
    assert "--port" not in web["startCommand"]  # Render's PORT
    assert web["healthCheckPath"] == "/readyz"
    env = {item["key"]: item for item in web["envVars"]}
    assert env["DATABASE_URL"]["fromDatabase"] == {
        "name": database["name"],
        "property": "connectionString",
    }
    assert env["XRAY_RUN_MIGRATIONS"]["value"] == "false"
    assert set(env) <= XRAY_VARIABLES | PLATFORM_VARIABLES


@pytest.mark.postgres
def test_render_pre_deploy_then_start_command_on_the_platforms_port(
    empty_postgres_database: str, tmp_path: Path
) -> None:
    [web] = yaml.safe_load(RENDER.read_text())["services"]
    values = {item["key"]: item["value"] for item in web["envVars"] if "value" in item}
    values.pop("PYTHON_VERSION")
    # Render's connectionString: a plain postgresql:// URL.
    url = empty_postgres_database.replace("postgresql+asyncpg://", "postgresql://")
    migrated = run_to_completion(
        _shell(web["preDeployCommand"]),
        env=_platform_env(DATABASE_URL=url, **values),
        cwd=tmp_path,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    port = free_port()
    env = _platform_env(DATABASE_URL=url, PORT=str(port), XRAY_API_KEYS="generated-key", **values)
    with start(
        _shell(web["startCommand"]),
        env=env,
        cwd=tmp_path,
        port=port,
        log_path=tmp_path / "render.log",
        wait_for=web["healthCheckPath"],
    ) as server:
        _ingest_and_read_back(server.base_url, {"X-API-Key": "generated-key"})


# ------------------------------------------------------------------------ Cloud Run


def _cloud_run() -> tuple[dict[str, Any], dict[str, Any]]:
    service = yaml.safe_load(CLOUD_RUN_SERVICE.read_text())
    job = yaml.safe_load(CLOUD_RUN_JOB.read_text())
    return service, job


def test_cloud_run_files_lint_and_match_the_image() -> None:
    _yamllint(CLOUD_RUN_SERVICE)
    _yamllint(CLOUD_RUN_JOB)
    service, job = _cloud_run()
    assert (service["apiVersion"], service["kind"]) == ("serving.knative.dev/v1", "Service")
    assert (job["apiVersion"], job["kind"]) == ("run.googleapis.com/v1", "Job")
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    low = int(annotations["autoscaling.knative.dev/minScale"])
    high = int(annotations["autoscaling.knative.dev/maxScale"])
    assert 0 <= low <= high
    assert 1 <= template["spec"]["containerConcurrency"] <= 1000
    [container] = template["spec"]["containers"]
    [port] = container["ports"]
    # Cloud Run sets PORT to containerPort; the image listens on its XRAY_PORT.
    image_env = parse_dockerfile()[-1].env()
    assert port["containerPort"] == int(image_env.get("XRAY_PORT", "8000"))
    for probe, path in (("startupProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": port["containerPort"]}
    env = container_env(
        container, {("xray-database-url", "latest"): "x", ("xray-api-keys", "latest"): "k"}
    )
    assert env["XRAY_RUN_MIGRATIONS"] == "false"
    assert set(env) <= XRAY_VARIABLES
    # The job migrates the same database, from the same image, through the same socket.
    task = job["spec"]["template"]["spec"]["template"]["spec"]
    [migrator] = task["containers"]
    assert migrator["command"] == ["xray", "db", "upgrade"]
    assert migrator["image"] == container["image"]
    assert (
        job["spec"]["template"]["metadata"]["annotations"]["run.googleapis.com/cloudsql-instances"]
        == annotations["run.googleapis.com/cloudsql-instances"]
    )
    assert set(container_env(migrator, {("xray-database-url", "latest"): "x"})) <= XRAY_VARIABLES


@pytest.mark.postgres
def test_cloud_run_job_then_service_in_the_image(
    staged_image: StagedImage, container_workdir: Path, empty_postgres_database: str
) -> None:
    service, job = _cloud_run()
    [container] = service["spec"]["template"]["spec"]["containers"]
    [migrator] = job["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    secrets = {
        ("xray-database-url", "latest"): empty_postgres_database,
        ("xray-api-keys", "latest"): "cloud-run-key",
    }
    migrated = run_to_completion(
        migrator["command"],
        env=staged_image.process_env(container_env(migrator, secrets)),
        cwd=container_workdir,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    port = free_port()
    # Cloud Run's PORT, and XRAY_PORT moved off 8000 only so parallel runs do not collide.
    env = {**container_env(container, secrets), "PORT": str(port), "XRAY_PORT": str(port)}
    with start(
        staged_image.cmd,
        env=staged_image.process_env(env),
        cwd=container_workdir,
        port=port,
        log_path=container_workdir.parent / "cloud-run.log",
    ) as server:
        for probe in ("startupProbe", "livenessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert httpx.get(f"{server.base_url}{path}", timeout=5).status_code == 200
        _ingest_and_read_back(server.base_url, {"Authorization": "Bearer cloud-run-key"})


# --------------------------------------------------------------------------- Lambda


def _sam() -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(SAM_TEMPLATE.read_text(), Loader=_CloudFormation)
    return template


def test_sam_template_passes_cfn_lint() -> None:
    # cfn-lint knows the AWS::Serverless resources and the CloudFormation schemas offline.
    from cfnlint.api import ManualArgs, lint_file

    assert [str(match) for match in lint_file(SAM_TEMPLATE, ManualArgs())] == []
    _yamllint(SAM_TEMPLATE)


def test_sam_template_handlers_runtime_and_environment() -> None:
    template = _sam()
    function = template["Globals"]["Function"]
    handlers = {
        name: resource["Properties"]["Handler"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert handlers == {
        "ApiFunction": "xray.api.aws_lambda.handler",
        "MigrateFunction": "xray.api.aws_lambda.migrate",
    }
    for path in handlers.values():
        module, _, attribute = path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attribute)), path
    # The runtime satisfies requires-python, and the code is what build.sh writes.
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    floor = re.fullmatch(r">=3\.(\d+)", pyproject["project"]["requires-python"])
    assert floor is not None
    runtime = re.fullmatch(r"python3\.(\d+)", function["Runtime"])
    assert runtime is not None and int(runtime.group(1)) >= int(floor.group(1))
    build = (REPO_ROOT / "deploy" / "lambda" / "build.sh").read_text()
    assert f"OUT=deploy/lambda/{function['CodeUri'].rstrip('/')}" in build
    assert "[lambda]" in build
    assert "lambda" in pyproject["project"]["optional-dependencies"]
    variables = function["Environment"]["Variables"]
    assert set(variables) <= XRAY_VARIABLES
    assert variables["XRAY_RUN_MIGRATIONS"] == "false"
