"""While PostgreSQL is unreachable the API answers 503 (JSON), and it recovers by itself.

The outage is real: the test database is closed to connections and its sessions are
terminated (``ALTER DATABASE ... ALLOW_CONNECTIONS false``), then reopened. SQLite is an
embedded file with no server to lose, so these tests are PostgreSQL-only.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.api._data import ids, run
from tests.conftest import _pg_admin, _pg_dsn
from xray.api import create_app
from xray.shared import APIConfig

pytestmark = pytest.mark.postgres


@pytest.fixture
def outage_database(postgres_database: str) -> Iterator[tuple[str, str]]:
    """A database of its own (closing it must not disturb other tests): (name, url)."""
    name = f"xray_outage_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    url = postgres_database.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield name, url
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _close(name: str) -> None:
    await _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await _pg_admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )


async def _open(name: str) -> None:
    await _pg_admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


async def _client(url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(APIConfig(database_url=url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://xray.test") as client:
            yield client


async def _until(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    # Bounded wait for a state change, not a timing assertion.
    for _ in range(200):
        response = await client.get(path)
        if response.status_code == status:
            return response
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never answered {status}: {response.text}")


async def test_503_while_the_database_is_down_then_recovery(
    outage_database: tuple[str, str],
) -> None:
    name, url = outage_database
    async for client in _client(url):
        first = run()
        assert (await client.post("/runs", json=first)).status_code == 200
        await _close(name)
        try:
            for method, path, body in [
                ("GET", "/runs", None),
                ("GET", f"/runs/{first['id']}", None),
                ("GET", "/steps", None),
                ("GET", "/candidates/k", None),
                ("GET", "/pipelines", None),
                ("POST", "/runs", run()),
                ("POST", "/batch", {"runs": [run()]}),
                ("GET", "/readyz", None),
            ]:
                response = await client.request(method, path, json=body)
                assert response.status_code == 503, (path, response.text)
                assert response.json()["error"] == "database_unavailable"
                assert response.headers["retry-after"] == "1"
            assert (await client.get("/healthz")).status_code == 200
        finally:
            await _open(name)
        await _until(client, "/readyz", 200)
        second = run(started=10)
        assert (await client.post("/runs", json=second)).status_code == 200
        assert ids((await client.get("/runs")).json()) == [second["id"], first["id"]]


async def test_server_starts_while_the_database_is_down_and_migrates_when_it_returns(
    outage_database: tuple[str, str],
) -> None:
    name, url = outage_database
    await _close(name)
    try:
        async for client in _client(url):
            assert (await client.get("/healthz")).status_code == 200
            response = await client.get("/runs")
            assert response.status_code == 503
            assert response.json()["error"] == "database_unavailable"
            await _open(name)
            await _until(client, "/readyz", 200)
            assert (await client.post("/runs", json=run())).status_code == 200
    finally:
        await _open(name)


def test_dsn_helper_is_the_one_the_fixture_uses() -> None:
    # Guards the fixture above against drifting from tests/conftest.py's URL format.
    assert _pg_dsn("x").startswith("postgresql://")
