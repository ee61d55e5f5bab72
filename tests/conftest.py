"""Fixtures every test shares: a clean environment and real databases.

Every test starts in an empty temporary directory with no X-Ray environment variables,
so no developer's ``xray.config.yaml`` or ``XRAY_*`` setting leaks into a result.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from xray.shared import ENV_OVERRIDES

IN_CI = os.environ.get("CI", "").lower() == "true"
PG_HOST = os.environ.get("XRAY_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("XRAY_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("XRAY_TEST_PG_USER", "postgres")
PG_PASSWORD = os.environ.get("XRAY_TEST_PG_PASSWORD", "")
REPO_ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO_ROOT / "test-artifacts"

_XRAY_ENV = {"XRAY_CONFIG", *ENV_OVERRIDES}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Run each test in an empty directory with no X-Ray variables set."""
    for name in list(os.environ):
        if name in _XRAY_ENV or name.startswith("XRAY_"):
            if name.startswith("XRAY_TEST_"):
                continue
            monkeypatch.delenv(name, raising=False)
    # The SDK's disk spool (and any process a test starts) stays inside the test.
    monkeypatch.setenv("XRAY_SPOOL_DIR", str(tmp_path / "xray-spool"))
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    yield workdir


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=2):
            return True
    except OSError:
        return False


def _pg_dsn(database: str) -> str:
    auth = PG_USER if not PG_PASSWORD else f"{PG_USER}:{PG_PASSWORD}"
    return f"postgresql://{auth}@{PG_HOST}:{PG_PORT}/{database}"


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_pg_dsn("postgres"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end.

    Yields its SQLAlchemy URL. Skips when no server is reachable, except under CI=true,
    where the PostgreSQL tests are mandatory and an unreachable server fails the run.
    """
    if not _pg_reachable():
        message = f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true the PostgreSQL tests must run", pytrace=False)
        pytest.skip(f"{message} (these tests run under CI=true)")
    name = f"xray_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    auth = PG_USER if not PG_PASSWORD else f"{PG_USER}:{PG_PASSWORD}"
    try:
        yield f"postgresql+asyncpg://{auth}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave files for a person to look at (screenshots, logs)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
