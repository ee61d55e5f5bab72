"""A database that stops answering: every route answers 503 with ``Retry-After`` (bounded by
``api.database_connect_timeout`` / ``api.database_statement_timeout``), ``/healthz`` stays
up, and the server recovers by itself.

PostgreSQL is partitioned with a TCP proxy between the server and the database that stops
forwarding (the shared PostgreSQL is never stopped). SQLite is locked by another process
holding the write lock.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests._servers import RunningServer, api_server
from tests.api._data import decision, run, step
from tests.reliability._proxy import FreezableProxy, freezable_proxy
from tests.reliability._stores import fresh_database

TIMEOUTS = {"XRAY_DATABASE_CONNECT_TIMEOUT": "1", "XRAY_DATABASE_STATEMENT_TIMEOUT": "1"}
# Only keeps a hanging server from hanging the suite; the server's own bounds are far lower.
CLIENT_TIMEOUT = 30.0


def _routes(run_id: str, step_id: str) -> list[tuple[str, str, object]]:
    r = run(pipeline="after-partition")
    return [
        ("GET", "/runs", None),
        ("GET", "/runs?metadata.k=v", None),
        ("GET", f"/runs/{run_id}", None),
        ("GET", "/steps", None),
        ("GET", f"/steps/{step_id}", None),
        ("GET", f"/steps/{step_id}/decisions", None),
        ("GET", "/candidates/k", None),
        ("GET", "/pipelines", None),
        ("POST", "/batch", {"runs": [r]}),
        ("POST", "/runs", run()),
        ("POST", f"/runs/{run_id}/steps", [step(run_id)]),
        ("GET", "/readyz", None),
    ]


def _until_ready(client: httpx.Client) -> None:
    # Bounded wait for recovery, not a timing assertion.
    for _ in range(300):
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not recover after the database came back")


@pytest.fixture
def partitioned(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RunningServer, FreezableProxy]]:
    for database_url in fresh_database("postgres", request, tmp_path / "db"):
        url = make_url(database_url)
        with freezable_proxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
            proxied = url.set(host="127.0.0.1", port=proxy.port)
            with api_server(
                proxied.render_as_string(hide_password=False),
                workdir=tmp_path,
                extra_env=TIMEOUTS,
            ) as server:
                yield server, proxy


@pytest.mark.postgres
def test_a_partitioned_postgresql_answers_503_on_every_route_then_recovers(
    partitioned: tuple[RunningServer, FreezableProxy],
) -> None:
    server, proxy = partitioned
    with httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client:
        r = run()
        s = step(r["id"], decisions=[decision("k")])
        assert client.post("/batch", json={"runs": [r], "steps": [s]}).status_code == 200
        proxy.freeze()
        try:
            for method, path, body in _routes(r["id"], s["id"]):
                response = client.request(method, path, json=body)
                assert response.status_code == 503, (method, path, response.text)
                assert response.json()["error"] == "database_unavailable"
                assert response.headers["retry-after"] == "1"
            # Many at once: each is bounded on its own, none waits for the outage.
            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(lambda _: client.get("/runs").status_code, range(16)))
            assert set(statuses) == {503}
            assert client.get("/healthz").status_code == 200
        finally:
            proxy.thaw()
        _until_ready(client)
        after = run(started=10)
        assert client.post("/runs", json=after).status_code == 200
        listed = [item["id"] for item in client.get("/runs").json()["items"]]
        assert after["id"] in listed and r["id"] in listed
    assert "Traceback" not in server.log()


def test_a_locked_sqlite_database_answers_503_to_writers_and_serves_readers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "xray.db"
    with (
        api_server(f"sqlite+aiosqlite:///{path}", workdir=tmp_path, extra_env=TIMEOUTS) as server,
        httpx.Client(base_url=server.base_url, timeout=CLIENT_TIMEOUT) as client,
    ):
        first = run()
        assert client.post("/runs", json=first).status_code == 200
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            # Writers queue for the lock in the server; each waits a bounded time.
            with ThreadPoolExecutor(8) as pool:
                responses = list(pool.map(lambda _: client.post("/runs", json=run()), range(8)))
            assert {response.status_code for response in responses} == {503}
            assert all(response.headers["retry-after"] == "1" for response in responses)
            assert [item["id"] for item in client.get("/runs").json()["items"]] == [first["id"]]
        finally:
            other.execute("ROLLBACK")
            other.close()
        second = run(started=5)
        assert client.post("/runs", json=second).status_code == 200
        ids = [item["id"] for item in client.get("/runs").json()["items"]]
        assert ids == [second["id"], first["id"]]


def test_the_timeouts_are_settings() -> None:
    from xray.shared import load_api_config

    config = load_api_config(
        env={"XRAY_DATABASE_CONNECT_TIMEOUT": "2.5", "XRAY_DATABASE_STATEMENT_TIMEOUT": "7"}
    )
    assert (config.database_connect_timeout, config.database_statement_timeout) == (2.5, 7.0)
