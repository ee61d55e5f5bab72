"""API test fixtures: the real app on a real database, SQLite and PostgreSQL alike.

``database_url`` is parametrized, so every test that uses it (directly or through
``client``) runs once on a fresh SQLite file and once on the session's PostgreSQL database
(migrated once, its tables truncated before each test).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from xray.api import create_app, upgrade_database
from xray.shared import APIConfig

_TABLES = "runs, steps, decisions, pipelines, api_keys"


async def truncate(database_url: str) -> None:
    import asyncpg

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def migrated_postgres(postgres_database: str) -> str:
    upgrade_database(postgres_database)
    return postgres_database


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "xray.db"
    upgrade_database(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A clean, migrated database: a new SQLite file, or the truncated PostgreSQL one.

    The PostgreSQL database is shared by the whole session (other test packages load
    their own data into it), so it is emptied before *and* after each test.
    """
    if request.param == "sqlite":
        # A copy of a migrated file: the same schema, without migrating per test.
        target = tmp_path / "xray.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite_template"), target)
        yield f"sqlite+aiosqlite:///{target}"
        return
    url: str = request.getfixturevalue("migrated_postgres")
    asyncio.run(truncate(url))
    try:
        yield url
    finally:
        asyncio.run(truncate(url))


@pytest.fixture
def dialect(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


ClientFactory = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def make_client(database_url: str) -> ClientFactory:
    """Open a client on a freshly started app; keyword arguments go into ``APIConfig``."""

    @contextlib.asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        config = APIConfig(database_url=database_url, **overrides)
        app = create_app(config)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://xray.test") as c:
                c.app = app  # type: ignore[attr-defined]
                yield c

    return factory


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the real app and a clean database, with no API keys configured."""
    async with make_client() as c:
        yield c
