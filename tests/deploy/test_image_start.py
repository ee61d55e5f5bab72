"""The image's exact start command, run outside Docker against a real PostgreSQL.

No Docker engine runs here, so these tests do what the container would do: the files the
Dockerfile copies (through .dockerignore), the final stage's ENV, WORKDIR and CMD, then
Compose's or the Kubernetes Deployment's environment on top, then the same HTTP probes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_HOST, PG_PORT, free_port
from tests.deploy._image import (
    RunningProcess,
    StagedImage,
    TCPForwarder,
    compose_environment,
    container_env,
    interpolate_compose,
    kubernetes_documents,
    load_compose,
    run_to_completion,
    start,
)

pytestmark = pytest.mark.slow


def _server_exists() -> bool:
    try:
        import xray.api.__main__  # noqa: F401
    except ImportError:
        return False
    return True


needs_server = pytest.mark.skipif(
    not _server_exists(), reason="xray.api.__main__ (the API server) is not in this checkout"
)


def _run_payload() -> tuple[str, dict[str, object]]:
    run_id = str(uuid.uuid4())
    started = datetime.now(UTC).isoformat()
    return run_id, {"runs": [{"id": run_id, "pipeline": "deploy-check", "started_at": started}]}


def _ingest_and_read_back(base_url: str, headers: dict[str, str]) -> None:
    """A run written and read back: the schema exists and the server uses it."""
    run_id, batch = _run_payload()
    written = httpx.post(f"{base_url}/batch", json=batch, headers=headers, timeout=10)
    assert written.status_code == 200, written.text
    assert written.json()["runs"] == 1
    read = httpx.get(f"{base_url}/runs/{run_id}", headers=headers, timeout=10)
    assert read.status_code == 200, read.text
    assert read.json()["pipeline"] == "deploy-check"


def _assert_graceful_stop(server: RunningProcess) -> None:
    """SIGTERM (docker stop, pod termination) ends the server after a clean shutdown.

    uvicorn drains, runs the app's shutdown, then re-raises the signal, so the exit is
    either 0 or "killed by SIGTERM" (Docker shows 143); both are a clean stop.
    """
    assert server.stop() in {0, -signal.SIGTERM}, server.log()
    assert "Application shutdown complete" in server.log(), server.log()


async def _has_table(database_url: str, table: str) -> bool:
    import asyncpg

    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{table}"))
    finally:
        await conn.close()


@needs_server
def test_staged_image_imports_the_server_from_the_images_files(
    staged_image: StagedImage, container_workdir: Path
) -> None:
    # Guards the other tests: the code they run is the image's copy, not the checkout's.
    code = (
        "import api, xray, xray.shared; print(xray.__file__); "
        "import importlib.resources as r; "
        "print(r.files('xray.api').joinpath('dashboard/static/index.html').is_file())"
    )
    env = staged_image.process_env({})
    result = run_to_completion(["python", "-c", code], env=env, cwd=container_workdir)
    assert result.returncode == 0, result.stderr
    module_file, has_dashboard = result.stdout.split()
    assert Path(module_file).is_relative_to(staged_image.site)
    assert has_dashboard == "True"


@needs_server
@pytest.mark.postgres
def test_image_command_with_compose_environment_serves_and_stops_on_sigterm(
    staged_image: StagedImage, container_workdir: Path, postgres_database: str
) -> None:
    compose = load_compose()["services"]["xray-api"]
    api_key = f"key-{uuid.uuid4().hex}"
    extra = {
        name: interpolate_compose(value, {"XRAY_API_KEY": api_key})
        for name, value in compose_environment(compose).items()
    }
    # The only changes to the container's environment: the database is the test server
    # instead of the `db` service, and the port is a free one instead of 8000.
    assert extra["DATABASE_URL"].endswith("@db:5432/xray")
    port = free_port()
    extra.update({"DATABASE_URL": postgres_database, "XRAY_PORT": str(port)})
    env = staged_image.process_env(extra)
    assert env["XRAY_HOST"] == "0.0.0.0" and env["XRAY_RUN_MIGRATIONS"] == "true"

    with start(
        staged_image.cmd,
        env=env,
        cwd=container_workdir,
        port=port,
        log_path=container_workdir.parent / "compose-api.log",
    ) as server:
        health = httpx.get(f"{server.base_url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        # Docker's HEALTHCHECK, the exact argv, in the container's environment.
        check = run_to_completion(staged_image.healthcheck, env=env, cwd=container_workdir)
        assert check.returncode == 0, check.stderr
        # XRAY_API_KEY from the host became the server's key.
        assert httpx.get(f"{server.base_url}/runs", timeout=5).status_code == 401
        # Migrated at start (XRAY_RUN_MIGRATIONS=true): ingest works straight away.
        _ingest_and_read_back(server.base_url, {"X-API-Key": api_key})
        _assert_graceful_stop(server)
    assert "Traceback" not in server.log()


@needs_server
@pytest.mark.postgres
def test_kubernetes_job_migrates_then_deployment_env_serves_without_migrating(
    staged_image: StagedImage, container_workdir: Path, empty_postgres_database: str
) -> None:
    documents = kubernetes_documents()
    secrets = {
        ("xray-secrets", "database-url"): empty_postgres_database,
        ("xray-secrets", "api-keys"): "first-key,second-key",
    }
    [job] = documents["Job/xray-migrate"]["spec"]["template"]["spec"]["containers"]
    [pod] = documents["Deployment/xray-api"]["spec"]["template"]["spec"]["containers"]

    # 1. The migration Job: its command, in the image, with its environment.
    job_env = staged_image.process_env(container_env(job, secrets))
    migrated = run_to_completion(job["command"], env=job_env, cwd=container_workdir)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert asyncio.run(_has_table(empty_postgres_database, "alembic_version"))

    # 2. A replica: the image's CMD with the Deployment's environment (port made free).
    port = free_port()
    pod_env = {**container_env(pod, secrets), "XRAY_PORT": str(port)}
    assert pod_env["XRAY_RUN_MIGRATIONS"] == "false"
    argv = pod.get("command", staged_image.cmd)
    with start(
        argv,
        env=staged_image.process_env(pod_env),
        cwd=container_workdir,
        port=port,
        log_path=container_workdir.parent / "k8s-api.log",
    ) as server:
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            path = pod[probe]["httpGet"]["path"]
            assert httpx.get(f"{server.base_url}{path}", timeout=5).status_code == 200, path
        _ingest_and_read_back(server.base_url, {"Authorization": "Bearer second-key"})
        _assert_graceful_stop(server)


@needs_server
@pytest.mark.postgres
def test_deployment_env_does_not_migrate_at_start(
    staged_image: StagedImage, container_workdir: Path, empty_postgres_database: str
) -> None:
    # Two replicas must never race on migrations: with the Deployment's environment the
    # server leaves the schema to the Job and creates nothing itself.
    [pod] = kubernetes_documents()["Deployment/xray-api"]["spec"]["template"]["spec"]["containers"]
    port = free_port()
    secrets = {("xray-secrets", "database-url"): empty_postgres_database}
    env = {**container_env(pod, secrets), "XRAY_PORT": str(port)}
    with start(
        staged_image.cmd,
        env=staged_image.process_env(env),
        cwd=container_workdir,
        port=port,
        log_path=container_workdir.parent / "no-migrate-api.log",
        wait_for="/healthz",
    ) as server:
        # Live but not ready: a skipped migration Job keeps the pods out of the Service
        # instead of letting them answer every request with an error.
        ready = httpx.get(f"{server.base_url}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["error"] == "database_unavailable"
        assert "xray db upgrade" in ready.json()["message"]
        _assert_graceful_stop(server)
    assert not asyncio.run(_has_table(empty_postgres_database, "alembic_version"))


@needs_server
def test_seed_sqlite_config_serves_with_python_dash_m_api(tmp_path: Path) -> None:
    # The documented SQLite set-up, verbatim: xray.config.yaml with the SQLite URL, `python -m api`.
    from tests.deploy.test_config_example import SEED_SQLITE

    project = tmp_path / "project"
    project.mkdir()
    (project / "xray.config.yaml").write_text(SEED_SQLITE)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    env.pop("DATABASE_URL", None)
    env["XRAY_PORT"] = str(port)  # only so parallel runs do not collide on 8000
    python = str(Path(sys.executable))
    with start(
        [python, "-m", "api"], env=env, cwd=project, port=port, log_path=tmp_path / "sqlite.log"
    ) as server:
        _ingest_and_read_back(server.base_url, {})
        _assert_graceful_stop(server)
    assert (project / "xray.db").is_file()


def test_healthcheck_argv_runs_with_only_the_images_python(
    staged_image: StagedImage, container_workdir: Path
) -> None:
    # The HEALTHCHECK needs nothing but the stdlib: it fails cleanly (exit 1, no
    # ImportError) when nothing listens.
    env = staged_image.process_env({"XRAY_PORT": str(free_port())})
    result = subprocess.run(
        staged_image.healthcheck, env=env, cwd=container_workdir, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "URLError" in result.stderr and "ImportError" not in result.stderr


@needs_server
@pytest.mark.postgres
def test_image_started_before_its_database_becomes_ready_when_the_database_appears(
    staged_image: StagedImage, container_workdir: Path, postgres_database: str
) -> None:
    # A first `docker-compose up`: the API may start before PostgreSQL accepts
    # connections. It must stay up (live, not ready) and become ready by itself.
    database_port = free_port()
    database = TCPForwarder(database_port, (PG_HOST, PG_PORT))
    url = postgres_database.replace(f"@{PG_HOST}:{PG_PORT}/", f"@127.0.0.1:{database_port}/")
    compose = load_compose()["services"]["xray-api"]
    extra = {
        name: interpolate_compose(value, {}) for name, value in compose_environment(compose).items()
    }
    port = free_port()
    extra.update({"DATABASE_URL": url, "XRAY_PORT": str(port)})
    try:
        with start(
            staged_image.cmd,
            env=staged_image.process_env(extra),
            cwd=container_workdir,
            port=port,
            log_path=container_workdir.parent / "late-db-api.log",
            wait_for="/healthz",
        ) as server:
            not_ready = httpx.get(f"{server.base_url}/readyz", timeout=10)
            assert not_ready.status_code == 503, not_ready.text
            assert not_ready.json()["error"] == "database_unavailable"
            database.open()
            deadline = time.monotonic() + 60
            while httpx.get(f"{server.base_url}/readyz", timeout=10).status_code != 200:
                assert server.process.poll() is None, server.log()
                assert time.monotonic() < deadline, f"never became ready:\n{server.log()}"
                time.sleep(0.25)
            _ingest_and_read_back(server.base_url, {})
            _assert_graceful_stop(server)
    finally:
        database.close()
