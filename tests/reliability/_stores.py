"""Databases of their own for the server-level reliability tests, and raw SQL on them.

Each test module gets a fresh SQLite file or a fresh PostgreSQL database (created next to
the session's one and dropped afterwards), so data written here never meets other tests.
Raw SQL goes through the drivers directly (sqlite3, asyncpg), not through X-Ray, to write
rows X-Ray itself would refuse.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _pg_admin

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def fresh_database(kind: str, request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """Yield the SQLAlchemy URL of a new empty database, ``kind`` "sqlite" or "postgres"."""
    if kind == "sqlite":
        workdir.mkdir(parents=True, exist_ok=True)
        yield f"sqlite+aiosqlite:///{workdir / 'xray.db'}"
        return
    session_url: str = request.getfixturevalue("postgres_database")
    name = f"xray_rel_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield session_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def execute(database_url: str, sql: str, *params: Any) -> None:
    """Run one statement with positional parameters written ``$1, $2...`` (both drivers)."""
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        lite = sql
        for i in range(len(params), 0, -1):
            lite = lite.replace(f"${i}::jsonb", f"?{i}").replace(f"${i}", f"?{i}")
        with sqlite3.connect(path) as connection:
            connection.execute(lite, params)
        return

    async def run() -> None:
        import asyncpg

        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(sql, *params)
        finally:
            await connection.close()

    asyncio.run(run())
