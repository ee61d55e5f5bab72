"""Behind a real PgBouncer in transaction mode (what Supabase's and Neon's pooled
endpoints are or behave like): migrations, ingest and queries from 8 concurrent clients."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests._servers import api_server
from tests.api import _data
from tests.conftest import free_port
from tests.deploy._services import PgBouncer, pgbouncer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLIENTS = 8
ROUNDS = 16  # x 5 requests per round per client
POOLER_ENV = {"XRAY_DATABASE_POOLER": "transaction"}


@pytest.fixture(scope="module")
def bouncer() -> Iterator[PgBouncer]:
    with pgbouncer(pool_size=4) as running:
        yield running


def _database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _xray(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    base.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "xray.cli", *args],
        env={**base, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _tables(direct_url: str) -> set[str]:
    conn = await asyncpg.connect(direct_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


def _client_session(
    base_url: str, client: int, headers: dict[str, str] | None = None
) -> Counter[int]:
    """One client's rounds: a batch in (run + two steps with decisions, the COPY path),
    then the queries the CLI and dashboard make."""
    statuses: Counter[int] = Counter()
    pipeline = f"pooled-{client}"
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as http:
        for round_ in range(ROUNDS):
            run_id = _data.new_id()
            keys = [f"c{client}-{round_}-{i}" for i in range(30)]
            steps = [
                _data.step(
                    run_id,
                    seq=0,
                    input_count=30,
                    output_count=10,
                    decisions=[
                        _data.decision(k, "accepted" if i < 10 else "rejected")
                        for i, k in enumerate(keys)
                    ],
                ),
                _data.step(
                    run_id, seq=1, name="select", type="select", input_count=10, output_count=1
                ),
            ]
            batch = {
                "runs": [_data.run(run_id, pipeline=pipeline, status="success", ended=5)],
                "steps": steps,
            }
            responses = [
                http.post("/batch", json=batch),
                http.get("/runs", params={"pipeline": pipeline, "limit": 5}),
                http.get(f"/runs/{run_id}"),
                http.get("/steps", params={"type": "filter", "min_elimination_rate": 0.5}),
                http.get(f"/candidates/{keys[0]}"),
            ]
            statuses.update(r.status_code for r in responses)
    return statuses


def test_migrations_ingest_and_queries_through_pgbouncer_transaction_mode(
    bouncer: PgBouncer, empty_postgres_database: str, tmp_path: Path
) -> None:
    pooled = bouncer.url(_database_name(empty_postgres_database))
    migrated = _xray("db", "upgrade", env={"DATABASE_URL": pooled, **POOLER_ENV}, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert {"runs", "steps", "decisions"} <= asyncio.run(_tables(empty_postgres_database))

    # The server migrates at start too (a no-op now, still through the pooler).
    with api_server(pooled, workdir=tmp_path, extra_env=POOLER_ENV) as server:
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(lambda c: _client_session(server.base_url, c), range(CLIENTS)))
        statuses = sum(results, Counter())
        runs = httpx.get(f"{server.base_url}/pipelines", params={"limit": 100}).json()["items"]
        log = server.log()
    assert sum(statuses.values()) == CLIENTS * ROUNDS * 5
    assert statuses == Counter({200: CLIENTS * ROUNDS * 5}), (
        statuses,
        log[-3000:],
        bouncer.log()[-2000:],
    )
    assert sorted((p["pipeline"], p["run_count"]) for p in runs) == sorted(
        (f"pooled-{c}", ROUNDS) for c in range(CLIENTS)
    )


def test_migrations_take_the_direct_url_when_one_is_given(
    bouncer: PgBouncer, empty_postgres_database: str, tmp_path: Path
) -> None:
    pooled = bouncer.url(_database_name(empty_postgres_database))
    # `xray db upgrade` uses the direct URL, even when the pooled one cannot be reached.
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    env = {"DATABASE_URL": unreachable, "XRAY_MIGRATIONS_DATABASE_URL": empty_postgres_database}
    migrated = _xray("db", "upgrade", env=env, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "nowhere" not in migrated.stdout

    # `xray keys create` (a one-shot command) works through the pooler as it is.
    created = _xray(
        "keys", "create", "--name", "ci", "--json", env={"DATABASE_URL": pooled}, cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]

    # The server serves through the pooler and migrates (at start) through the direct URL.
    extra = {**POOLER_ENV, "XRAY_MIGRATIONS_DATABASE_URL": empty_postgres_database}
    with api_server(pooled, workdir=tmp_path, extra_env=extra) as server:
        assert httpx.get(f"{server.base_url}/runs").status_code == 401
        statuses = _client_session(server.base_url, 0, {"X-API-Key": key})
        assert statuses == Counter({200: ROUNDS * 5})
