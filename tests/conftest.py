"""Fixtures every test shares: a clean environment and real databases.

Every test starts in an empty temporary directory with no X-Ray environment variables,
so no developer's ``xray.config.yaml`` or ``XRAY_*`` setting leaks into a result.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    # Every pytest-xdist worker must collect the same test ids: an id made at import
    # (``f"/runs/{new_id()}/steps"``) is named without its random part.
    if isinstance(val, str) and _UUID.search(val):
        return _UUID.sub("<uuid>", val)
    return None


# Modules whose tests each go to whichever worker is free: long scenarios, each with its
# own server, database and names. Every other module runs whole on one worker, so its
# module fixtures start once and its tests keep their order.
SPREAD_MODULES = frozenset({"tests/reliability/test_delivery.py"})


def _work_unit(nodeid: str) -> str:
    """What a pytest-xdist worker takes in one piece (``--dist loadscope``)."""
    module = nodeid.split("::", 1)[0]
    return nodeid if module in SPREAD_MODULES else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        # A class's tests stay with the rest of their module (loadscope alone splits them).
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return ModuleScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _WORKER:
        return
    # The longest work first (with --no-loadscope-reorder the workers take it in this
    # order), so no worker starts it when the others are nearly done: the spread
    # scenarios, then modules with a slow test, then the rest, each in collected order.
    rank: dict[str, int] = {}
    for item in items:
        unit = _work_unit(item.nodeid)
        level = 0 if unit == item.nodeid else 1 if item.get_closest_marker("slow") else 2
        rank[unit] = min(rank.get(unit, level), level)
    items.sort(key=lambda item: rank[_work_unit(item.nodeid)])


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


# Ports handed out by free_port(): below the kernel's ephemeral range, so no outgoing
# connection (of this run or any other process) takes one between the check and the
# server's bind, and split into one block per pytest-xdist worker, so two workers never
# pick the same port.
_PORTS_LOW, _PORTS_HIGH = 20_000, 32_000
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_WORKERS = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
_BLOCK = (_PORTS_HIGH - _PORTS_LOW) // (_WORKERS + 1)
_BLOCK_START = _PORTS_LOW + _BLOCK * (int(_WORKER[2:]) + 1 if _WORKER[2:].isdigit() else 0)
# A random start in the block: two runs at once that share a block walk through different
# ports.
_next_port = itertools.count(random.randrange(_BLOCK))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, this worker's own."""
    for _ in range(_BLOCK):
        port = _BLOCK_START + next(_next_port) % _BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_BLOCK_START}..{_BLOCK_START + _BLOCK - 1}")


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
