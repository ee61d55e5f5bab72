"""The app as a whole: OpenAPI, the entry point, the dashboard shell, migrations, retention."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.api._data import decision, ids, run, step
from tests.api.conftest import ClientFactory
from xray.api import apply_retention, create_app, upgrade_database
from xray.shared import APIConfig

CONTRACT = {
    ("post", "/batch"): "BatchResult",
    ("post", "/runs"): "BatchResult",
    ("post", "/runs/{run_id}/steps"): "BatchResult",
    ("get", "/runs"): "Page_RunOut_",
    ("get", "/runs/{run_id}"): "RunDetailOut",
    ("get", "/steps"): "Page_StepOut_",
    ("get", "/steps/{step_id}"): "StepOut",
    ("get", "/steps/{step_id}/decisions"): "Page_DecisionOut_",
    ("get", "/candidates/{candidate_key}"): "Page_DecisionOut_",
    ("get", "/pipelines"): "Page_PipelineOut_",
    ("get", "/healthz"): "Health",
    ("get", "/readyz"): "Readiness",
}


def test_openapi_documents_every_endpoint_with_request_and_response_models() -> None:
    schema = create_app(APIConfig()).openapi()
    components = schema["components"]["schemas"]
    for (method, path), model in CONTRACT.items():
        operation = schema["paths"][path][method]
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["$ref"].endswith("/" + model), (path, ok)
        assert model in components
        if path not in ("/healthz", "/readyz"):
            assert "401" in operation["responses"], path
            error = operation["responses"]["401"]["content"]["application/json"]["schema"]
            assert error["$ref"].endswith("/ErrorBody")
    for path, model in (
        ("/batch", "BatchIn"),
        ("/runs", "RunIn"),
        ("/runs/{run_id}/steps", "StepIn"),
    ):
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert f"#/components/schemas/{model}" in str(body["schema"])
    for model in ("BatchIn", "RunIn", "StepIn", "DecisionIn", "ErrorInfo"):
        assert "properties" in components[model], model
    assert "StepType" in str(components["StepIn"]) or "StepType" in components


async def test_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


async def test_dashboard_shell_is_served_at_root(client: httpx.AsyncClient) -> None:
    from xray.api.dashboard import STATIC_DIR

    if not (STATIC_DIR / "index.html").is_file():
        pytest.skip("the dashboard's static files are not in this checkout")
    response = await client.get("/")
    assert response.status_code == 200
    assert "<html" in response.text.lower()
    assert (await client.get("/static/no-such-file.js")).status_code == 404


async def test_missing_dashboard_directory_is_a_clean_404(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import xray.api.routes.dashboard as dashboard

    monkeypatch.setattr(dashboard, "STATIC_DIR", tmp_path / "absent")
    app = create_app(APIConfig(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ("/", "/static/app.js"):
                response = await client.get(path)
                assert response.status_code == 404
                assert response.json()["error"] == "not_found"
            assert (await client.get("/healthz")).status_code == 200


def test_migrations_are_idempotent(database_url: str) -> None:
    upgrade_database(database_url)
    upgrade_database(database_url)


async def test_retention_deletes_old_runs_with_their_steps_and_decisions(
    client: httpx.AsyncClient, database_url: str
) -> None:
    now = datetime.now(UTC)
    old = run(started_at=(now - timedelta(days=40)).isoformat())
    new = run(started_at=(now - timedelta(days=1)).isoformat())
    steps = [
        step(r["id"], started_at=r["started_at"], decisions=[decision("shared-key")])
        for r in (old, new)
    ]
    assert (
        await client.post("/batch", json={"runs": [old, new], "steps": steps})
    ).status_code == 200

    deleted = await asyncio.to_thread(apply_retention, database_url, retention_days=30)
    assert (deleted.runs, deleted.steps, deleted.decisions) == (1, 1, 1)
    assert ids((await client.get("/runs")).json()) == [new["id"]]
    assert ids((await client.get("/steps")).json()) == [steps[1]["id"]]
    fate = (await client.get("/candidates/shared-key")).json()["items"]
    assert [d["run_id"] for d in fate] == [new["id"]]


async def test_server_applies_retention_at_start(
    make_client: ClientFactory, database_url: str
) -> None:
    old = run(started_at=(datetime.now(UTC) - timedelta(days=3)).isoformat())
    async with make_client() as client:
        assert (await client.post("/runs", json=old)).status_code == 200
    async with make_client(retention_days=2) as client:
        for _ in range(100):  # the pass runs in the background right after start
            if not (await client.get("/runs")).json()["items"]:
                break
            await asyncio.sleep(0.05)
        assert (await client.get("/runs")).json()["items"] == []


async def test_concurrent_identical_batches_leave_one_copy(client: httpx.AsyncClient) -> None:
    runs = [run(started=i) for i in range(5)]
    steps = [step(r["id"], decisions=[decision(f"k{j}") for j in range(20)]) for r in runs]
    batch = {"runs": list(reversed(runs)), "steps": steps}
    responses = await asyncio.gather(*(client.post("/batch", json=batch) for _ in range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    page = (await client.get("/runs")).json()
    assert sorted(ids(page)) == sorted(r["id"] for r in runs)
    for s in steps:
        got = (await client.get(f"/steps/{s['id']}/decisions")).json()["items"]
        assert [d["candidate_key"] for d in got] == [f"k{j}" for j in range(20)]


def _main(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xray.api", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ("api:\n  port: lots\n", "api.port"),
        ("api:\n  databse_url: x\n", "api.databse_url"),
        ("api:\n  api_keys: ${NOT_SET_ANYWHERE}\n", "api.api_keys"),
        ("api:\n  database_url: mysql://db/x\n", "api.database_url"),
    ],
)
def test_invalid_config_exits_2_naming_file_and_key(
    clean_environment: Path, config: str, key: str
) -> None:
    (clean_environment / "xray.config.yaml").write_text(config)
    result = _main(cwd=clean_environment)
    assert result.returncode == 2, result.stderr
    assert key in result.stderr
    assert "Traceback" not in result.stderr
    if key != "api.database_url":
        assert "xray.config.yaml" in result.stderr


def test_help_lists_the_flags(clean_environment: Path) -> None:
    result = _main("--help", cwd=clean_environment)
    assert result.returncode == 0
    for flag in ("--host", "--port", "--database-url", "--config"):
        assert flag in result.stdout


async def test_without_migrations_an_empty_database_is_503_not_500(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    app = create_app(APIConfig(database_url=url, run_migrations=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ("/readyz", "/runs", "/steps"):
                response = await client.get(path)
                assert response.status_code == 503, path
                assert response.json()["error"] == "database_unavailable"
            # Readiness says what to do, not just that something is wrong.
            assert "xray db upgrade" in (await client.get("/readyz")).json()["message"]
            assert (await client.post("/runs", json=run())).status_code == 503
            assert (await client.get("/healthz")).status_code == 200
    await asyncio.to_thread(upgrade_database, url)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/readyz")).status_code == 200


async def test_even_a_bug_answers_a_json_error(tmp_path: Path) -> None:
    app = create_app(APIConfig(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "message": "internal error", "fields": []}
