"""A real X-Ray server (``python -m xray.api`` under uvicorn on 127.0.0.1) that OTLP
exporters send to, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._servers import RunningServer, api_server
from tests.api.conftest import truncate
from xray.api import upgrade_database

KEY = "otlp-key-3c9e41"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    if request.param == "sqlite":
        with api_server(
            f"sqlite+aiosqlite:///{tmp_path / 'otlp.db'}",
            workdir=tmp_path / "server",
            api_keys=(KEY,),
        ) as running:
            yield running
        return
    url = request.getfixturevalue("postgres_database")
    upgrade_database(url)
    asyncio.run(truncate(url))
    try:
        with api_server(url, workdir=tmp_path / "server", api_keys=(KEY,)) as running:
            yield running
    finally:
        asyncio.run(truncate(url))
