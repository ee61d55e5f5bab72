"""``XRAY_WORKERS`` / ``--workers``: several server processes on PostgreSQL, one on SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests._servers import api_server
from tests.api._data import ids, run, step


def _start(
    tmp_path: Path, database_url: str, *args: str, workers: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    env |= {"DATABASE_URL": database_url, "XRAY_WORKERS": workers}
    return subprocess.run(
        [sys.executable, "-m", "xray.api", "--port", "0", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_more_than_one_worker_on_sqlite_is_refused_naming_the_setting(tmp_path: Path) -> None:
    result = _start(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/x.db", workers="2")
    assert result.returncode == 2
    assert "XRAY_WORKERS" in result.stderr and "SQLite" in result.stderr


@pytest.mark.parametrize("workers", ["0", "many"])
def test_a_worker_count_that_is_not_a_positive_integer_is_refused(
    tmp_path: Path, workers: str
) -> None:
    result = _start(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/x.db", workers=workers)
    assert result.returncode == 2
    assert f"XRAY_WORKERS: expected a positive integer, got {workers!r}" in result.stderr


@pytest.mark.postgres
def test_two_workers_on_postgres_serve_ingest_and_queries(
    tmp_path: Path, migrated_postgres: str
) -> None:
    env = {"XRAY_WORKERS": "2"}
    with api_server(
        migrated_postgres, workdir=tmp_path, extra_env=env, startup_timeout=120
    ) as server:
        r = run(status="success")
        steps = [step(r["id"], seq=i, input_count=10, output_count=5) for i in range(3)]
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            # Several requests: with keep-alive off, each may land on either process.
            for _ in range(4):
                response = client.post(
                    "/batch", json={"runs": [r], "steps": steps}, headers={"Connection": "close"}
                )
                assert response.status_code == 200, response.text
            got = client.get(f"/runs/{r['id']}").json()
        assert [s["seq"] for s in got["steps"]] == [0, 1, 2]
        assert ids({"items": [got]}) == [r["id"]]
        # /readyz answers once one process is up; the other may still be starting.
        deadline = time.monotonic() + 60
        while server.log().count("Started server process") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.log().count("Started server process") == 2
