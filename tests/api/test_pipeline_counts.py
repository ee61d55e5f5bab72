"""``GET /pipelines`` from counts kept at ingest, and migration 0002 that creates them."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from alembic import command

from tests.api._data import at, run, step
from tests.conftest import _pg_admin, _pg_dsn
from xray.api import apply_retention
from xray.api._migrate import alembic_config


async def _pipelines(client: httpx.AsyncClient) -> dict[str, tuple[int, str]]:
    items = (await client.get("/pipelines")).json()["items"]
    return {p["pipeline"]: (p["run_count"], p["last_started_at"]) for p in items}


async def test_a_run_sent_at_start_and_end_counts_once(client: httpx.AsyncClient) -> None:
    a = run(pipeline="p", started=10)
    b = run(pipeline="p", started=20)
    await client.post("/runs", json=[a, b])
    await client.post("/runs", json=[a | {"status": "success", "ended_at": at(15)}])
    await client.post("/batch", json={"runs": [b, b | {"status": "success"}]})
    assert await _pipelines(client) == {"p": (2, at(20).replace("+00:00", "Z"))}


async def test_a_step_before_its_run_counts_the_run_once(client: httpx.AsyncClient) -> None:
    r = run(pipeline="early", started=5)
    early = step(r["id"], pipeline="early", run_started_at=r["started_at"])
    assert (await client.post("/batch", json={"steps": [early]})).status_code == 200
    assert (await client.post("/batch", json={"runs": [r]})).status_code == 200
    other = run(pipeline="later", started=50)
    assert (await client.post("/batch", json={"runs": [other]})).status_code == 200
    assert await _pipelines(client) == {
        "early": (1, at(5).replace("+00:00", "Z")),
        "later": (1, at(50).replace("+00:00", "Z")),
    }


async def test_a_rejected_request_counts_nothing(client: httpx.AsyncClient) -> None:
    orphan = step(str(uuid.uuid4()))  # unknown run, no pipeline: 404, all rolled back
    response = await client.post("/batch", json={"runs": [run(pipeline="p")], "steps": [orphan]})
    assert response.status_code == 404
    assert await _pipelines(client) == {}


async def test_retention_recounts_the_pipelines(
    client: httpx.AsyncClient, database_url: str
) -> None:
    now = datetime.now(UTC)
    old = run(pipeline="gone", started_at=(now - timedelta(days=40)).isoformat())
    mixed_old = run(pipeline="kept", started_at=(now - timedelta(days=41)).isoformat())
    mixed_new = run(pipeline="kept", started_at=(now - timedelta(days=1)).isoformat())
    await client.post("/runs", json=[old, mixed_old, mixed_new])
    await asyncio.to_thread(apply_retention, database_url, retention_days=30)
    counts = await _pipelines(client)
    assert list(counts) == ["kept"] and counts["kept"][0] == 1


_RUNS = [("a", "2024-01-01"), ("a", "2024-03-01"), ("b", "2024-02-01")]
_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgres": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
}


async def _sql(dialect: str, target: str, statements: list[str]) -> list[list[tuple[object, ...]]]:
    """Run statements on the database and return each one's rows."""
    if dialect == "sqlite":
        with sqlite3.connect(target) as conn:
            return [[tuple(r) for r in conn.execute(s).fetchall()] for s in statements]
    conn = await asyncpg.connect(target)
    try:
        return [[tuple(r) for r in await conn.fetch(s)] for s in statements]
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migration_0002_counts_existing_runs_sets_statistics_and_downgrades(
    dialect: str, tmp_path: Path
) -> None:
    if dialect == "sqlite":
        target = str(tmp_path / "m.db")
        url = f"sqlite+aiosqlite:///{target}"
    else:
        name = f"xray_test_m_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        target = _pg_dsn(name)
        url = target.replace("postgresql://", "postgresql+asyncpg://")
    try:
        config = alembic_config(url)
        command.upgrade(config, "0001")
        inserts = [
            "INSERT INTO runs (id, pipeline, status, started_at, metadata, sdk, received_at) "
            f"VALUES ('{uuid.uuid4().hex}', '{p}', 'success', '{s} 00:00:00', '{{}}', '{{}}', "
            f"'{s} 00:00:00')"
            for p, s in _RUNS
        ]
        asyncio.run(_sql(dialect, target, inserts))
        command.upgrade(config, "0002")
        counts = asyncio.run(
            _sql(dialect, target, ["SELECT pipeline, run_count FROM pipelines ORDER BY 1"])
        )
        assert counts == [[("a", 2), ("b", 1)]]
        if dialect == "postgres":
            # The metadata filter's plan: see the migration.
            stats = (
                "SELECT attstattarget FROM pg_attribute "
                "WHERE attrelid = 'runs'::regclass AND attname = 'metadata'"
            )
            assert asyncio.run(_sql(dialect, target, [stats])) == [[(1000,)]]
        command.downgrade(config, "0001")
        tables = {row[0] for row in asyncio.run(_sql(dialect, target, [_TABLES[dialect]]))[0]}
        assert "pipelines" not in tables and "runs" in tables
    finally:
        if dialect == "postgres":
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
